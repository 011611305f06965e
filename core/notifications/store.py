"""Notifications: writes keyed so that a retried send stores nothing twice, and the inbox reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.notifications.contracts import NotificationPublic, NotificationSpec
from core.notifications.tables import Notification
from core.platform.contracts import Page
from core.platform.pages import Order, fetch_page


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


async def inbox_page(
    conn: AsyncConnection, *, recipient: str, unread: bool, limit: int, offset: int, cursor: str | None = None
) -> Page[NotificationPublic]:
    """One recipient's notifications, newest first."""
    stmt = select(Notification.__table__).where(Notification.recipient == recipient)
    if unread:
        stmt = stmt.where(Notification.read_ts.is_(None))
    return await fetch_page(
        conn,
        stmt,
        order=Order(Notification.created_ts, Notification.id, descending=True),
        limit=limit,
        offset=offset,
        cursor=cursor,
        item=NotificationPublic.model_validate,
    )


async def mark_read(conn: AsyncConnection, notification_id: uuid.UUID) -> NotificationPublic | None:
    """Mark as read (idempotent: the first read time is kept); None when there is no such notification."""
    await conn.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.read_ts.is_(None))
        .values(read_ts=datetime.now(UTC))
    )
    row = (await conn.execute(select(Notification.__table__).where(Notification.id == notification_id))).first()
    return NotificationPublic.model_validate(row) if row else None


async def recipient_of(conn: AsyncConnection, notification_id: uuid.UUID) -> str | None:
    found = await conn.execute(select(Notification.recipient).where(Notification.id == notification_id))
    return found.scalar_one_or_none()
