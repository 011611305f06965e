"""External events (seed 004's event triggers): ``POST /api/v1/events/{source}``.

Each source is declared with its Standard Webhooks secret (TRELLIS_EVENT_SOURCES); a request is
accepted only when its signature matches and its timestamp is within TRELLIS_EVENT_TOLERANCE_SECONDS
(401 otherwise). The event is recorded once per (source, webhook-id): a replayed request is answered
200 and changes nothing. Recorded events reach automation rules (trigger ``external_event``) and the
step executions waiting on that source and key (``wait_event``) through the outbox.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from api.deps import EngineDep, SettingsDep
from api.errors import ApiError
from core.effects.webhook_signing import new_secret, verify
from core.entities.store import record_external_event
from core.platform.contracts import check_storable
from core.steps.definition import SOURCE_NAME

router = APIRouter(prefix="/api/v1/events", tags=["events"])

MAX_KEY = 500
_NOBODYS_SECRET = new_secret()


class EventAccepted(BaseModel):
    id: str
    source: str
    key: str | None
    duplicate: bool


@router.post(
    "/{source}",
    response_model=EventAccepted,
    status_code=202,
    responses={200: {"model": EventAccepted, "description": "A replayed webhook-id: recorded before, ignored"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"key": {"type": "string", "maxLength": MAX_KEY}},
                        "description": "Any JSON object; 'key' is what wait_event steps match",
                    }
                }
            },
        }
    },
)
async def post_event(
    source: Annotated[str, Path(pattern=SOURCE_NAME, description="A declared event source")],
    request: Request,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
) -> EventAccepted:
    """Record one event, signed per Standard Webhooks with the source's secret (no API key: the
    signature is the credential)."""
    # An undeclared source is checked against a secret nobody has, so it answers exactly as a declared
    # source does to a request not signed with its secret: a prober learns nothing of which sources exist.
    secret = settings.event_sources.get(source, _NOBODYS_SECRET)
    body = await request.body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    problem = verify(secret, headers, body, int(time.time()), settings.event_tolerance_seconds)
    if problem is not None or source not in settings.event_sources:
        raise ApiError(401, "unverified_event", problem or "the signature does not match")
    try:
        payload: Any = json.loads(body)
    except RecursionError as exc:
        raise ApiError(400, "invalid_body", "the body nests deeper than JSON bodies may") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_event", f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_event", "the body is a JSON object")
    key = payload.get("key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY):
        raise ApiError(422, "invalid_event", f"key is a string of 1 to {MAX_KEY} characters")
    try:
        check_storable(payload)
    except ValueError as exc:
        raise ApiError(422, "invalid_event", str(exc)) from exc
    webhook_id = headers["webhook-id"]
    async with engine.begin() as conn:
        event_id, new = await record_external_event(conn, source, webhook_id, key, payload, datetime.now(UTC))
    if not new:
        response.status_code = 200
    return EventAccepted(id=str(event_id), source=source, key=key, duplicate=not new)
