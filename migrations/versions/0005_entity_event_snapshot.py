"""entity events: one snapshot per change (field and status changes point at the primary row)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "f_entity_event", sa.Column("snapshot_event_id", postgresql.UUID(as_uuid=True), nullable=True), schema="app"
    )


def downgrade() -> None:
    op.drop_column("f_entity_event", "snapshot_event_id", schema="app")
