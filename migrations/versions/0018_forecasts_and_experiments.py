"""process intelligence: the variant an instance or a step execution runs in; experiments and their
audit; the forecasts the watch keeps per running instance and the early warnings it raised

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "app"
JSON = postgresql.JSONB()
NOW = sa.func.now()


def _ts(name: str, *, default: bool = False, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=NOW if default else None, nullable=nullable)


def upgrade() -> None:
    for table, index in (
        ("d_industry_workflow_graph_data", "idx_workflow_data_experiment"),
        ("workflow_executions", "idx_workflow_executions_experiment"),
    ):
        op.add_column(table, sa.Column("experiment_id", sa.UUID(), nullable=True), schema=S)
        op.add_column(table, sa.Column("variant", sa.Text(), nullable=True), schema=S)
        op.create_index(
            index,
            table,
            ["experiment_id", "variant"],
            schema=S,
            postgresql_where=sa.text("experiment_id IS NOT NULL"),
        )
    op.create_table(
        "experiments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("subject_kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("variants", JSON, nullable=False),
        sa.Column("min_sample", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Double(), nullable=False),
        sa.Column("guardrail", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        _ts("created_ts", default=True),
        _ts("ended_ts", nullable=True),
        sa.Column("ended_by", sa.Text(), nullable=True),
        sa.Column("promoted", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        schema=S,
    )
    op.create_index(
        "uq_experiments_running",
        "experiments",
        ["subject_kind", "subject"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index("idx_experiments_subject", "experiments", ["subject_kind", "subject", "created_ts"], schema=S)
    op.create_table(
        "experiment_events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("experiment_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("variant", sa.Text(), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        _ts("ts", default=True),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_events"),
        schema=S,
    )
    op.create_index("idx_experiment_events_experiment", "experiment_events", ["experiment_id", "ts"], schema=S)
    op.create_table(
        "instance_forecasts",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("template_code", sa.Text(), nullable=False),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column("success_probability", sa.Double(), nullable=False),
        sa.Column("remaining_p50_seconds", sa.Double(), nullable=False),
        sa.Column("remaining_p90_seconds", sa.Double(), nullable=False),
        sa.Column("on_time_probability", sa.Double(), nullable=True),
        _ts("deadline", nullable=True),
        sa.Column("risk", sa.Double(), nullable=False),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        _ts("computed_ts", default=True),
        sa.PrimaryKeyConstraint("instance_id", name="pk_instance_forecasts"),
        schema=S,
    )
    op.create_index(
        "idx_instance_forecasts_risk",
        "instance_forecasts",
        [sa.text("risk DESC"), sa.text("instance_id DESC")],
        schema=S,
    )
    op.create_table(
        "forecast_warnings",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("template_code", sa.Text(), nullable=False),
        sa.Column("owner_role", sa.Text(), nullable=False),
        sa.Column("on_time_probability", sa.Double(), nullable=False),
        _ts("deadline"),
        _ts("warned_ts", default=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        _ts("acknowledged_ts", nullable=True),
        sa.PrimaryKeyConstraint("instance_id", name="pk_forecast_warnings"),
        schema=S,
    )
    op.create_index(
        "idx_forecast_warnings_open",
        "forecast_warnings",
        ["warned_ts"],
        schema=S,
        postgresql_where=sa.text("acknowledged_ts IS NULL"),
    )


def downgrade() -> None:
    for table in ("forecast_warnings", "instance_forecasts", "experiment_events", "experiments"):
        op.drop_table(table, schema=S)
    for table, index in (
        ("d_industry_workflow_graph_data", "idx_workflow_data_experiment"),
        ("workflow_executions", "idx_workflow_executions_experiment"),
    ):
        op.drop_index(index, table_name=table, schema=S)
        op.drop_column(table, "variant", schema=S)
        op.drop_column(table, "experiment_id", schema=S)
