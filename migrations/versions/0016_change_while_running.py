"""change while running: who paused an instance, an execution or a session; a session's fork source;
the runs linked to an execution; migrations of running instances between template versions

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "app"


def upgrade() -> None:
    for table in ("d_industry_workflow_graph_data", "workflow_executions", "orchestrator_session"):
        op.add_column(table, sa.Column("paused", postgresql.JSONB(), nullable=True), schema=S)
    op.add_column("orchestrator_session", sa.Column("forked_from", sa.String(100), nullable=True), schema=S)
    op.create_index(
        "idx_workflow_data_paused",
        "d_industry_workflow_graph_data",
        ["started_ts"],
        schema=S,
        postgresql_where=sa.text("paused IS NOT NULL"),
    )
    op.create_index(
        "idx_workflow_executions_source",
        "workflow_executions",
        [sa.text("(trigger ->> 'execution_id')")],
        schema=S,
    )
    op.create_table(
        "process_migrations",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("template_code", sa.String(50), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("plan", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("completed_ts", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_process_migrations"),
        schema=S,
    )
    op.create_index("idx_process_migrations_code", "process_migrations", ["template_code", "created_ts"], schema=S)
    op.create_table(
        "process_migration_items",
        sa.Column("migration_id", sa.UUID(), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("from_state_id", sa.Integer(), nullable=False),
        sa.Column("to_state_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), server_default="pending", nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("updated_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("migration_id", "instance_id", name="pk_process_migration_items"),
        sa.ForeignKeyConstraint(
            ["migration_id"],
            [f"{S}.process_migrations.id"],
            name="fk_process_migration_items_migration_id_process_migrations",
        ),
        schema=S,
    )
    op.create_index(
        "idx_process_migration_items_pending", "process_migration_items", ["migration_id", "outcome"], schema=S
    )


def downgrade() -> None:
    op.drop_table("process_migration_items", schema=S)
    op.drop_table("process_migrations", schema=S)
    op.drop_index("idx_workflow_executions_source", "workflow_executions", schema=S)
    op.drop_index("idx_workflow_data_paused", "d_industry_workflow_graph_data", schema=S)
    op.drop_column("orchestrator_session", "forked_from", schema=S)
    for table in ("d_industry_workflow_graph_data", "workflow_executions", "orchestrator_session"):
        op.drop_column(table, "paused", schema=S)
