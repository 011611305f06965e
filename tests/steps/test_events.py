"""External events (seed 004's event triggers) on the real servers: a Standard Webhooks-signed event
resumes the executions waiting on its source and key whose condition holds; unsigned, badly signed and
stale requests are 401s; a replayed webhook-id is recorded once and delivered to nobody again; a wait
times out; and an automation rule with the external_event trigger starts a workflow."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from core.entities.tables import EntityEvent
from core.platform.settings import Settings
from core.steps.tables import EventWait
from tests.support.api import Api, eventually, make_settings, open_api
from tests.support.automation import create_rule
from tests.support.events import SOURCE, post_event, signed
from tests.support.steps import create, execute, execution, finished, run, unique_name, workflow


def wait_step(condition: str | None = None, timeout_ms: int = 60_000) -> dict[str, Any]:
    wait: dict[str, Any] = {"source": SOURCE, "key": "${input.ticket}", "timeoutMs": timeout_ms}
    if condition is not None:
        wait["condition"] = condition
    return {"name": "ticket_event", "wait_event": wait}


async def waiting(engine: AsyncEngine, execution_id: str) -> None:
    async def registered() -> bool:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(func.count()).select_from(EventWait).where(EventWait.execution_id == uuid.UUID(execution_id))
            )
            return bool(found.scalar_one())

    await eventually(registered)


async def test_a_signed_event_resumes_waiting_executions_and_a_replay_is_ignored(api: Api, engine: AsyncEngine) -> None:
    name = unique_name("events")
    await create(
        api,
        workflow(
            name,
            [
                wait_step(condition="event.priority == 'high'"),
                {
                    "name": "noted",
                    "tool": "entity.create",
                    "params": {"entity_type": "event_test", "name": "${ticket_event.payload.subject}"},
                },
            ],
        ),
    )
    ticket = f"ZD-{uuid.uuid4().hex[:6]}"
    first = (await execute(api, name, {"ticket": ticket}))["id"]
    await waiting(engine, first)

    body = {"key": ticket, "priority": "high", "subject": "printer on fire"}
    text, headers = signed(body)
    unsigned = await api.request(
        "POST", f"/api/v1/events/{SOURCE}", role=None, content=text, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401 and "unsigned" in unsigned.json()["detail"]
    tampered = await api.request(
        "POST", f"/api/v1/events/{SOURCE}", role=None, content=text.replace("fire", "ice"), headers=headers
    )
    assert tampered.status_code == 401 and "does not match" in tampered.json()["detail"]
    stale = await post_event(api, body, age=timedelta(minutes=10))
    assert stale.status_code == 401 and "stale" in stale.json()["detail"]
    unknown = await post_event(api, body, source="nosuch")
    assert unknown.status_code == 401  # as a declared source answers a request its secret did not sign

    low = await post_event(api, {**body, "priority": "low"})
    assert low.status_code == 202, low.text
    accepted = await post_event(api, body, webhook_id=headers["webhook-id"])
    assert accepted.status_code == 202 and accepted.json()["duplicate"] is False, accepted.text
    done = await finished(api, first)
    assert done["status"] == "completed", done["error"]
    assert done["output"]["ticket_event"]["payload"] == body  # the low-priority event did not end the wait
    assert done["output"]["noted"]["name"] == "printer on fire"

    second = (await execute(api, name, {"ticket": ticket}))["id"]
    await waiting(engine, second)
    replayed = await post_event(api, body, webhook_id=headers["webhook-id"])
    assert replayed.status_code == 200 and replayed.json()["duplicate"] is True
    async with engine.connect() as conn:
        recorded = await conn.execute(
            select(func.count()).select_from(EntityEvent).where(EntityEvent.id == uuid.UUID(accepted.json()["id"]))
        )
        assert recorded.scalar_one() == 1
    still = await execution(api, second)
    assert still["status"] == "running" and still["live"]["current_step"] == "ticket_event"
    fresh = await post_event(api, {**body, "subject": "second fire"})
    assert fresh.status_code == 202
    resumed = await finished(api, second)
    assert resumed["output"]["noted"]["name"] == "second fire"


async def test_a_wait_times_out_and_bad_bodies_are_refused(api: Api) -> None:
    done = await run(api, [wait_step(timeout_ms=300)], {"ticket": f"ZD-{uuid.uuid4().hex[:6]}"})
    assert done["status"] == "failed" and "arrived within 300 ms" in done["error"], done["error"]

    bodies: list[tuple[Any, str]] = [([1, 2], "JSON object"), ({"key": 5}, "key is a string")]
    for body, message in bodies:
        text, headers = signed(body)
        response = await api.request("POST", f"/api/v1/events/{SOURCE}", role=None, content=text, headers=headers)
        assert response.status_code == 422 and message in response.json()["detail"], response.text


async def test_an_external_event_rule_starts_a_workflow(api: Api) -> None:
    name = unique_name("from_event")
    await create(
        api,
        workflow(
            name,
            [
                {
                    "name": "made",
                    "tool": "entity.create",
                    "params": {"entity_type": "event_test", "name": "${input.ticket}"},
                }
            ],
        ),
    )
    await create_rule(
        api,
        SOURCE,
        [{"type": "start_workflow", "workflow": name, "input": {"ticket": "{{ event.new_value.key }}"}}],
        trigger_action_type="external_event",
        trigger_conditions={"expression": "event.new_value.payload.priority == 'urgent'"},
    )
    ticket = f"ZD-{uuid.uuid4().hex[:6]}"
    assert (await post_event(api, {"key": f"{ticket}-low", "priority": "low"})).status_code == 202
    assert (await post_event(api, {"key": ticket, "priority": "urgent"})).status_code == 202

    async def started() -> list[dict[str, Any]] | None:
        response = await api.request("GET", "/api/v1/workflow-executions", role="viewer", params={"workflow": name})
        items = response.json()["items"]
        return items if items and all(i["status"] == "completed" for i in items) else None

    executions = await eventually(started)
    assert len(executions) == 1
    assert executions[0]["output"]["made"]["name"] == ticket
    assert executions[0]["trigger"]["event_kind"] == "external_event"


async def test_a_source_secret_without_padding_verifies_as_the_library_signs(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None
) -> None:
    """Issue 20: an unpadded base64 secret, which the standardwebhooks library accepts, made the route
    answer 500. Secrets are decoded as the library decodes them, and checked when the settings load."""
    unpadded = "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")
    settings = make_settings(postgres_url, temporal_address, task_queue, event_sources={"unpadded": unpadded})
    lifespan, client = await open_api(settings)
    try:
        text = json.dumps({"key": f"k-{uuid.uuid4().hex[:6]}"})
        webhook_id, when = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(unpadded).sign(webhook_id, when, text),
            "content-type": "application/json",
        }
        accepted = await client.post("/api/v1/events/unpadded", content=text, headers=headers)
        assert accepted.status_code == 202, accepted.text
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
    for bad in ("whsec_", "whsec_%%%%"):
        with pytest.raises(ValidationError, match="the secret of 'broken' cannot be used"):
            Settings(event_sources={"broken": bad})
