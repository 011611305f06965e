"""E-mail over SMTP (TRELLIS_SMTP_*), for every sender: rule actions and step tools. One message per
call, with the caller's stable Message-ID, so a receiver can recognise a repeat after a crash."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from core.platform.settings import Settings


def _send(settings: Settings, message: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)


async def send_mail(settings: Settings, *, to: str, subject: str, body: str, message_id: str) -> None:
    """Send in a thread (smtplib blocks). Raises ``smtplib.SMTPRecipientsRefused`` when the server
    refuses the address, other ``smtplib.SMTPException`` / ``OSError`` when it cannot take the message:
    the caller decides which are worth retrying."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    await asyncio.to_thread(_send, settings, message)
