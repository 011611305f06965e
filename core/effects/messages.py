"""Message effects: an in-app notification (a database row) and an e-mail (SMTP), once each for rules
and steps, with one reading of what an SMTP server's answer means."""

from __future__ import annotations

import smtplib
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from core.effects.failures import EffectFailed
from core.notifications.contracts import NotificationSpec
from core.notifications.mail import send_mail
from core.notifications.store import insert_notifications
from core.platform.settings import Settings


async def notify(
    conn: AsyncConnection,
    *,
    recipients: list[str],
    template: str,
    subject: str,
    body: str,
    dedupe_prefix: str,
    source: str,
    entity_id: uuid.UUID | None,
) -> None:
    """One notification per recipient, deduplicated by the caller's key (``dedupe_prefix``)."""
    await insert_notifications(
        conn,
        [NotificationSpec(recipient=r, template=template, subject=subject, body=body) for r in recipients],
        dedupe_prefix=dedupe_prefix,
        source=source,
        entity_id=entity_id,
        ts=datetime.now(UTC),
    )


def single_address(to: str) -> str:
    """``to`` as one address; a list, or a header break that would add recipients, is refused."""
    address = to.strip()
    if "@" not in address or any(c in address for c in "\r\n,;"):
        raise EffectFailed(f"'{address}' is not a single e-mail address", "permanent")
    return address


async def send_email(settings: Settings, *, to: str, subject: str, body: str, message_id: str) -> None:
    """Send one message with the caller's stable Message-ID (a repeat after a crash is recognisable).

    The SMTP answer decides the retry, for rules and steps alike: a refused recipient or any 5xx reply
    is permanent (the server will say the same again); a 4xx reply, a dropped connection or a server that
    cannot be reached is transient."""
    try:
        await send_mail(settings, to=single_address(to), subject=subject, body=body, message_id=message_id)
    except smtplib.SMTPRecipientsRefused as exc:
        raise EffectFailed(f"the SMTP server refused the recipient: {exc.recipients}", "permanent") from exc
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        permanent = 500 <= exc.smtp_code < 600
        answer = f"the SMTP server answered {exc.smtp_code} {reply}"
        raise EffectFailed(answer, "permanent" if permanent else "transient") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise EffectFailed(f"the SMTP server could not take the message: {exc}", "transient") from exc
