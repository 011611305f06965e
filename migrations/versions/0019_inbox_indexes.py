"""the inbox at the seed's scale (issue 27): the projection keeps the open deadline alert's time
(backfilled from the event log), with a partial index; and the approval gates waiting for a decision

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "app"
DATA = "d_industry_workflow_graph_data"

# A running instance's alert is open when its latest alert was raised in the state it is in and no
# acknowledgement came after it (what the inbox computed from the event log until now).
BACKFILL = """
    UPDATE app.d_industry_workflow_graph_data d SET deadline_alert_ts = open.event_ts
    FROM (
        SELECT DISTINCT ON (a.workflow_data_id) a.workflow_data_id, a.event_ts, a.seq, a.from_state_id
        FROM app.f_industry_workflow_events a
        WHERE a.event_type = 'deadline_exceeded'
        ORDER BY a.workflow_data_id, a.seq DESC
    ) AS open
    WHERE d.id = open.workflow_data_id AND d.workflow_status = 'active' AND d.current_state_id = open.from_state_id
      AND NOT EXISTS (
        SELECT 1 FROM app.f_industry_workflow_events k
        WHERE k.workflow_data_id = d.id AND k.event_type = 'deadline_acknowledged' AND k.seq > open.seq
      )
"""


def upgrade() -> None:
    op.add_column(DATA, sa.Column("deadline_alert_ts", sa.DateTime(timezone=True), nullable=True), schema=S)
    op.execute(BACKFILL)
    op.create_index(
        "idx_workflow_data_deadline_alert",
        DATA,
        ["deadline_alert_ts"],
        schema=S,
        postgresql_where=sa.text("deadline_alert_ts IS NOT NULL AND workflow_status = 'active'"),
    )
    op.create_index(
        "idx_workflow_data_pending_approval",
        DATA,
        [sa.text("(pending_approval ->> 'requested_ts')")],
        schema=S,
        postgresql_where=sa.text("workflow_status = 'active' AND (pending_approval ->> 'status') = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("idx_workflow_data_pending_approval", table_name=DATA, schema=S)
    op.drop_index("idx_workflow_data_deadline_alert", table_name=DATA, schema=S)
    op.drop_column(DATA, "deadline_alert_ts", schema=S)
