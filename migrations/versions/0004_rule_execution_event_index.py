"""rule executions by event: the dispatcher finds the claims of a batch of events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("idx_rule_execution_event", "f_rule_execution", ["event_id"], unique=False, schema="app")


def downgrade() -> None:
    op.drop_index("idx_rule_execution_event", table_name="f_rule_execution", schema="app")
