"""Notifications: one row per recipient, shared by every domain that tells people something."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DateTime,
    Index,
    Text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now, uuid_pk


class Notification(Base):
    """A notification to one recipient; ``dedupe_key`` makes a retried send a no-op."""

    __tablename__ = "d_notification"
    __table_args__ = (Index("idx_notification_recipient", "recipient", "read_ts"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    dedupe_key: Mapped[str] = mapped_column(Text, unique=True)
    recipient: Mapped[str] = mapped_column(Text)
    template: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_ts: Mapped[datetime] = created_now()
    read_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
