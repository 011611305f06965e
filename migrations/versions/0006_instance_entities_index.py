"""instances by the entities they manage (GIN on created_entities)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 04:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "idx_workflow_data_created_entities",
        "d_industry_workflow_graph_data",
        ["created_entities"],
        unique=False,
        schema="app",
        postgresql_using="gin",
        postgresql_ops={"created_entities": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("idx_workflow_data_created_entities", table_name="d_industry_workflow_graph_data", schema="app")
