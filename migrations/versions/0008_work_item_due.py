"""work items: due_at (the SLA)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("work_item", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True), schema="app")


def downgrade() -> None:
    op.drop_column("work_item", "due_at", schema="app")
