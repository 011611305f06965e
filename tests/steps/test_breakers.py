"""A circuit breaker on a call target, shared through Postgres: transient failures open it, an open
breaker fails calls without sending them (the receiver sees nothing), after its cool-down one trial call
goes through (half-open) and its success closes it; a refusal (4xx) does not count; an admin resets one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.support.api import Api
from tests.support.servers import WebhookServer
from tests.support.steps import run, steps_by_name

ONE_TRY = {"maxAttempts": 1}


async def breaker(api: Api, target: str) -> dict[str, Any] | None:
    response = await api.request("GET", "/api/v1/circuit-breakers", role="viewer")
    assert response.status_code == 200, response.text
    return next((b for b in response.json() if b["target"] == target), None)


def call(url: str, retry: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "call", "tool": "http.request", "params": {"url": url}, "retry": retry}]


async def test_a_breaker_opens_fails_fast_half_opens_and_closes(api: Api, breaker_receiver: WebhookServer) -> None:
    target = f"http:http://127.0.0.1:{breaker_receiver.port}"
    path = f"/svc/{uuid.uuid4().hex[:8]}"
    breaker_receiver.respond(path, {"ok": False}, [500, 500, 500, 200])
    url = breaker_receiver.url(path)

    opened = await run(api, call(url, {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 10}))
    assert opened["status"] == "failed" and "answered 500" in opened["error"], opened["error"]
    assert len(breaker_receiver.at(path)) == 3
    state = await breaker(api, target)
    assert state is not None and state["state"] == "open" and state["consecutive_failures"] == 3
    assert state["half_open_at"] is not None

    fast = await run(api, call(url, ONE_TRY))
    assert fast["status"] == "failed" and "circuit breaker" in fast["error"] and "nothing was sent" in fast["error"]
    assert len(breaker_receiver.at(path)) == 3  # no request reached the receiver

    await asyncio.sleep(1.3)  # the cool-down: the next call is the half-open trial
    trial = await run(api, call(url, ONE_TRY))
    assert trial["status"] == "completed", trial["error"]
    assert steps_by_name(trial)["call"]["output"]["status"] == 200
    assert len(breaker_receiver.at(path)) == 4
    closed = await breaker(api, target)
    assert closed is not None and closed["state"] == "closed" and closed["consecutive_failures"] == 0


async def test_refusals_do_not_count_and_an_admin_resets_a_breaker(api: Api, breaker_receiver: WebhookServer) -> None:
    target = f"http:http://127.0.0.1:{breaker_receiver.port}"
    reset = await api.request("POST", "/api/v1/circuit-breakers/reset", json={"target": target})
    assert reset.status_code in (204, 404)
    gone = breaker_receiver.url(f"/gone/{uuid.uuid4().hex[:8]}")
    for _ in range(4):  # a 410 is the target's answer, not a sign of bad health
        refused = await run(api, call(gone, ONE_TRY))
        assert refused["status"] == "failed" and "410" in refused["error"]
    assert await breaker(api, target) is None

    failing = breaker_receiver.url(f"/fail/{uuid.uuid4().hex[:8]}")
    await run(api, call(failing, {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 10}))
    assert (await breaker(api, target) or {}).get("state") == "open"
    forbidden = await api.request("POST", "/api/v1/circuit-breakers/reset", role="operator", json={"target": target})
    assert forbidden.status_code == 403
    done = await api.request("POST", "/api/v1/circuit-breakers/reset", json={"target": target})
    assert done.status_code == 204, done.text
    assert await breaker(api, target) is None
    missing = await api.request("POST", "/api/v1/circuit-breakers/reset", json={"target": target})
    assert missing.status_code == 404 and "GET /api/v1/circuit-breakers" in missing.json()["detail"]
    ok = await run(api, call(breaker_receiver.url(f"/ok/{uuid.uuid4().hex[:8]}"), ONE_TRY))
    assert ok["status"] == "completed"  # closed again: calls go through
