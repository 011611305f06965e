"""change notifications for the console's live pages: a row written to a projection the console shows
sends NOTIFY trellis_changes with the table and the row's key (never its data)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each watched table and the column that names what changed (a run, not the row: a step names its
# execution, an agent call its session). core/platform/changes.py maps them to the pages' topics.
WATCHED = {
    "d_industry_workflow_graph_data": "id",
    "workflow_executions": "id",
    "workflow_steps": "execution_id",
    "workflow_tasks": "execution_id",
    "orchestrator_session": "session_id",
    "orchestrator_agent_log": "session_id",
    "work_item": "id",
    "f_webhook_dead_letter": "id",
    "circuit_breakers": "target",
    "d_notification": "id",
}


def upgrade() -> None:
    # One function per key column (NEW.<column> read directly: no row converted to JSON on the hot
    # path). pg_notify in a transaction is sent at commit, so a rolled-back write notifies nobody;
    # identical payloads in one transaction are sent once; with nobody listening it costs next to nothing.
    for key in sorted(set(WATCHED.values())):
        op.execute(
            f"""
            CREATE FUNCTION app.trellis_notify_{key}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('trellis_changes', TG_TABLE_NAME || ' ' || NEW.{key}::text);
              RETURN NULL;
            END $$
            """
        )
    for table, key in WATCHED.items():
        op.execute(
            f"CREATE TRIGGER trellis_notify_change AFTER INSERT OR UPDATE ON app.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION app.trellis_notify_{key}()"
        )


def downgrade() -> None:
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS trellis_notify_change ON app.{table}")
    for key in sorted(set(WATCHED.values())):
        op.execute(f"DROP FUNCTION IF EXISTS app.trellis_notify_{key}()")
