"""Contracts of notifications: what a sender asks for, and what a reader gets."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class NotificationSpec(BaseModel):
    recipient: str
    template: str
    subject: str
    body: str


class NotificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    recipient: str
    template: str
    subject: str
    body: str
    source: str | None
    entity_id: uuid.UUID | None
    created_ts: datetime
    read_ts: datetime | None
