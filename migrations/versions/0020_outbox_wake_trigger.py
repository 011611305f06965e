"""the outbox's wake-up by trigger (issue 27): a statement-level trigger on the entity event log sends
the dispatcher's NOTIFY, delivered on commit as before, so that no entity write spends a round trip of
its own on ``SELECT pg_notify(...)``

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The channel is core/entities/store.py's OUTBOX_CHANNEL, which the dispatcher LISTENs on. The payload is
# empty: the dispatcher only wakes and reads what is undispatched; Postgres folds identical notifications
# of one transaction into one.
UPGRADE = """
CREATE FUNCTION app.wake_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('trellis_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER wake_outbox AFTER INSERT ON app.f_entity_event
    FOR EACH STATEMENT EXECUTE FUNCTION app.wake_outbox();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS wake_outbox ON app.f_entity_event;
DROP FUNCTION IF EXISTS app.wake_outbox();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
