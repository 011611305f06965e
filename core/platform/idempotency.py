"""Idempotency keys: a request retried with the same ``Idempotency-Key`` gets the first answer and applies
nothing twice (each door derives its workflow or update id from the key). What this module adds is the
check that makes reuse safe: the first request's fingerprint (method, path, body) is kept per caller and
key, and a later request with the same key but another fingerprint is refused, as payment APIs do,
instead of silently answering the first result and dropping the new action."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import Text, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now


class IdempotencyKeyUse(Base):
    """The first use of a caller's key: what it was sent with."""

    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text)
    request: Mapped[str] = mapped_column(Text)  # "POST /api/v1/…", for the refusal's message
    created_ts: Mapped[datetime] = created_now()


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's identity: its method, path and body (JSON compared by value, so spacing and key order
    do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except (ValueError, RecursionError):
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


async def first_use(conn: AsyncConnection, principal: str, key: str, method: str, path: str, body: bytes) -> str | None:
    """Record the key's first use, or check a repeat against it: None when the request may go on (first use,
    or the same request again), else the request the key was first used for."""
    mark = fingerprint(method, path, body)
    inserted = (
        await conn.execute(
            insert(IdempotencyKeyUse)
            .values(principal=principal, key=key, fingerprint=mark, request=f"{method} {path}")
            .on_conflict_do_nothing()
            .returning(IdempotencyKeyUse.key)
        )
    ).first()
    if inserted is not None:
        return None
    first = (
        await conn.execute(
            select(IdempotencyKeyUse.fingerprint, IdempotencyKeyUse.request).where(
                IdempotencyKeyUse.principal == principal, IdempotencyKeyUse.key == key
            )
        )
    ).one()
    return None if first.fingerprint == mark else str(first.request)
