"""The live-change stream: a written projection row reaches a subscriber as its topics within moments,
a stream needs a reader's key, and bad topics are a 422 (issue 22). Served over real HTTP: a stream
never ends, which an in-process transport would wait for."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.api import TOKENS, Api


async def _first_change(stream: httpx.Response) -> str:
    event = None
    async for line in stream.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "change":
            return line.removeprefix("data: ")
    raise AssertionError("the stream ended")


async def test_a_transition_reaches_the_stream_as_its_topics(api: Api, console: str) -> None:
    instance = await api.start("CONST_RES", name="Streamco")
    topics = f"instance:{instance['instance_id']},executions"
    headers = {"Authorization": f"Bearer {TOKENS['viewer']}"}
    async with (
        httpx.AsyncClient(base_url=console, timeout=30) as http,
        http.stream("GET", "/api/v1/changes", params={"topics": topics}, headers=headers) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        waiting = asyncio.create_task(_first_change(stream))
        await asyncio.sleep(0.3)  # subscribed (the first line was sent before the feed listened)
        assert (await api.transition(instance["instance_id"], 1)).status_code == 200
        changed = await asyncio.wait_for(waiting, timeout=10)
    assert changed.split() == [f"instance:{instance['instance_id']}"]


async def test_the_stream_checks_its_caller_and_its_topics(console: str) -> None:
    async with httpx.AsyncClient(base_url=console, timeout=10) as http:
        assert (await http.get("/api/v1/changes", params={"topics": "instances"})).status_code == 401
        bad = await http.get(
            "/api/v1/changes",
            params={"topics": "instances,<script>"},
            headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
        )
        assert bad.status_code == 422 and "not a topic" in bad.json()["detail"]
        many = ",".join(f"instance:{n}" for n in range(21))
        too_many = await http.get(
            "/api/v1/changes", params={"topics": many}, headers={"Authorization": f"Bearer {TOKENS['viewer']}"}
        )
        assert too_many.status_code == 422
