"""Console sign-ins: a server-side session per sign-in, so the browser holds a random token, never the API
key. A session expires (TRELLIS_CONSOLE_SESSION_HOURS) and is revoked at sign-out: a copied cookie stops
working then. Only a hash of the token is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from core.platform.database import Base, created_now


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    principal: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    created_ts: Mapped[datetime] = created_now()
    expires_ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(conn: AsyncConnection, principal: str, role: str, now: datetime, lifetime: timedelta) -> str:
    """A new session's token (for the cookie)."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        insert(ConsoleSession).values(
            token_hash=_hash(token), principal=principal, role=role, expires_ts=now + lifetime
        )
    )
    return token


async def session_of(conn: AsyncConnection, token: str, now: datetime) -> tuple[str, str] | None:
    """(principal, role) of a live session; None when the token is unknown, expired or revoked."""
    row = (
        await conn.execute(
            ConsoleSession.__table__.select().where(
                ConsoleSession.token_hash == _hash(token),
                ConsoleSession.revoked_ts.is_(None),
                ConsoleSession.expires_ts > now,
            )
        )
    ).first()
    return (row.principal, row.role) if row is not None else None


async def revoke(conn: AsyncConnection, token: str, now: datetime) -> None:
    await conn.execute(update(ConsoleSession).where(ConsoleSession.token_hash == _hash(token)).values(revoked_ts=now))
