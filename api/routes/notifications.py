"""Notifications: a recipient's inbox and marking a notification read."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import EngineDep, Reader
from api.errors import ApiError
from api.pagination import Limit, Offset
from core.notifications import store
from core.notifications.contracts import NotificationPublic
from core.platform.contracts import Page

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", response_model=Page[NotificationPublic])
async def inbox(
    engine: EngineDep,
    _: Reader,
    recipient: Annotated[str, Query(min_length=1, max_length=300)],
    unread: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[NotificationPublic]:
    """One recipient's inbox, newest first."""
    async with engine.connect() as conn:
        return await store.inbox_page(conn, recipient=recipient, unread=unread, limit=limit, offset=offset)


@router.post("/{notification_id}/read", response_model=NotificationPublic)
async def mark_read(notification_id: uuid.UUID, engine: EngineDep, _: Reader) -> NotificationPublic:
    """Mark as read (idempotent: the first read time is kept)."""
    async with engine.begin() as conn:
        found = await store.mark_read(conn, notification_id)
    if found is None:
        raise ApiError(404, "not_found", f"no notification {notification_id}")
    return found
