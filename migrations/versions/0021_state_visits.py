"""ended state visits as rows (issue 27): a template's analytics aggregate them by index instead of
unnesting every instance's history; the state entry's statement writes one per step from now on, and
this backfills them from the event log's state transitions. And a covering index for the analytics'
totals, days and histogram

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "app"

# Each state_transition's visit ends at the next one (whose seq keys the row); the last visit of an
# instance has not ended by a transition and is not a row (analytics read it from the projection).
BACKFILL = """
    INSERT INTO app.f_state_visit (instance_id, seq, template_code, state_id, entered_ts, left_ts, seconds)
    SELECT v.instance_id, v.next_seq, d.template_code, v.state_id, v.entered, v.left_ts,
           extract(epoch FROM v.left_ts - v.entered)
    FROM (
        SELECT e.workflow_data_id AS instance_id, e.to_state_id AS state_id, e.event_ts AS entered,
               lead(e.event_ts) OVER w AS left_ts, lead(e.seq) OVER w AS next_seq
        FROM app.f_industry_workflow_events e
        WHERE e.event_type = 'state_transition'
        WINDOW w AS (PARTITION BY e.workflow_data_id ORDER BY e.seq)
    ) AS v
    JOIN app.d_industry_workflow_graph_data d ON d.id = v.instance_id
    WHERE v.left_ts IS NOT NULL AND v.state_id IS NOT NULL
    ON CONFLICT DO NOTHING
"""


def upgrade() -> None:
    op.create_table(
        "f_state_visit",
        sa.Column("instance_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("template_code", sa.Text(), nullable=False),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column("entered_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "seq", name="pk_f_state_visit"),
        schema=S,
    )
    op.create_index("idx_state_visit_code_state", "f_state_visit", ["template_code", "state_id"], schema=S)
    op.execute(BACKFILL)
    op.create_index(
        "idx_workflow_data_code_figures",
        "d_industry_workflow_graph_data",
        ["template_code", "started_ts"],
        schema=S,
        postgresql_include=[
            "id",
            "template_version",
            "workflow_status",
            "success_flag",
            "completed_ts",
            "current_state_id",
        ],
    )


def downgrade() -> None:
    op.drop_index("idx_workflow_data_code_figures", table_name="d_industry_workflow_graph_data", schema=S)
    op.drop_index("idx_state_visit_code_state", table_name="f_state_visit", schema=S)
    op.drop_table("f_state_visit", schema=S)
