"""Posting external events as a Standard Webhooks sender does, signed with the independent
``standardwebhooks`` package."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from core.effects.webhook_signing import new_secret
from tests.support.api import Api

SOURCE = "zendesk"
SECRET = new_secret()


def signed(
    body: dict[str, Any], *, webhook_id: str | None = None, age: timedelta = timedelta(0)
) -> tuple[str, dict[str, str]]:
    text = json.dumps(body)
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    when = datetime.now(UTC) - age
    signature = Webhook(SECRET).sign(webhook_id, when, text)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return text, headers


async def post_event(
    api: Api,
    body: dict[str, Any],
    *,
    webhook_id: str | None = None,
    age: timedelta = timedelta(0),
    source: str = SOURCE,
) -> httpx.Response:
    text, headers = signed(body, webhook_id=webhook_id, age=age)
    return await api.request("POST", f"/api/v1/events/{source}", role=None, content=text, headers=headers)
