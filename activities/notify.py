"""Notification writes: one row per recipient, keyed so that a retried send stores nothing twice."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Notification
from core.models import NotificationSpec


async def insert_notifications(
    conn: AsyncConnection,
    notifications: list[NotificationSpec],
    *,
    dedupe_prefix: str,
    source: str,
    entity_id: uuid.UUID | None,
    ts: datetime,
) -> None:
    if not notifications:
        return
    await conn.execute(
        insert(Notification)
        .values(
            [
                {
                    "dedupe_key": f"{dedupe_prefix}:{n.recipient}:{n.template}",
                    "recipient": n.recipient,
                    "template": n.template,
                    "subject": n.subject,
                    "body": n.body,
                    "source": source,
                    "entity_id": entity_id,
                    "created_ts": ts,
                }
                for n in notifications
            ]
        )
        .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
    )
