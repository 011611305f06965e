"""Notifications: a recipient's inbox and marking a notification read.

An inbox belongs to its recipient: a principal reads (and marks read) the notifications addressed to
its name or to its role; admins see every inbox."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import EngineDep, Principal, Reader
from api.errors import ApiError
from api.pagination import Cursor, Limit, Offset
from core.notifications import store
from core.notifications.contracts import NotificationPublic
from core.platform.contracts import Page

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", response_model=Page[NotificationPublic])
async def inbox(
    engine: EngineDep,
    principal: Reader,
    recipient: Annotated[str, Query(min_length=1, max_length=300)],
    unread: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[NotificationPublic]:
    """One recipient's inbox, newest first."""
    _owner(principal, recipient)
    async with engine.connect() as conn:
        return await store.inbox_page(
            conn, recipient=recipient, unread=unread, limit=limit, offset=offset, cursor=cursor
        )


@router.post("/{notification_id}/read", response_model=NotificationPublic)
async def mark_read(notification_id: uuid.UUID, engine: EngineDep, principal: Reader) -> NotificationPublic:
    """Mark as read (idempotent: the first read time is kept); the recipient's (or an admin's) to do."""
    async with engine.begin() as conn:
        recipient = await store.recipient_of(conn, notification_id)
        if recipient is None:
            raise ApiError(404, "not_found", f"no notification {notification_id}")
        _owner(principal, recipient)
        found = await store.mark_read(conn, notification_id)
    assert found is not None
    return found


def _owner(principal: Principal, recipient: str) -> None:
    if principal.role != "admin" and recipient not in (principal.name, principal.role):
        raise ApiError(
            403,
            "forbidden",
            f"the inbox of '{recipient}' belongs to its recipient: '{principal.name}' reads its own inbox "
            f"('{principal.name}' or its role '{principal.role}'); admins read every inbox",
        )
