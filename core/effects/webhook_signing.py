"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}`` with the base64 secret after the ``whsec_`` prefix,
sent as ``webhook-signature: v1,<base64>``. The tests verify these with the independent
``standardwebhooks`` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from core.platform.standard_webhooks import PREFIX, decode_secret


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = decode_secret(secret)
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: int, tolerance_seconds: int) -> str | None:
    """Check a Standard Webhooks request (headers lower-cased): None when it is signed by ``secret``
    within the tolerance, else what is wrong, for a 401."""
    webhook_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not stamp or not signatures:
        return "unsigned: webhook-id, webhook-timestamp and webhook-signature headers are required (Standard Webhooks)"
    if len(webhook_id) > 200:
        return "webhook-id is longer than 200 characters"
    try:
        timestamp = int(stamp)
    except ValueError:
        return "webhook-timestamp is not a whole number of seconds"
    if abs(now - timestamp) > tolerance_seconds:
        return f"webhook-timestamp is more than {tolerance_seconds} s away from now: stale or from the future"
    expected = sign(secret, webhook_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return None
    return "the webhook-signature does not match the body (wrong secret, or the body was changed)"
