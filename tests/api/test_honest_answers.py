"""An answer says "nothing happened" only when that is true: while Temporal is frozen a start times out
with a 504 that says it may still be applied and which workflow to read; once Temporal answers again the
same Idempotency-Key returns the one instance, never a second. A call that timed out leaves nothing
behind for asyncio to complain about."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import uuid
from contextlib import suppress
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.platform.embedded import start_temporal_dev_server
from tests.support.api import Api, make_settings, open_api
from tests.support.processes import children
from worker import build_worker


async def test_a_start_while_temporal_is_frozen_says_it_may_still_be_applied(
    postgres_url: str, engine: AsyncEngine, worker: None
) -> None:
    server = await start_temporal_dev_server()
    address = server.client.service_client.config.target_host
    [frozen] = children(os.getpid(), f"--port {address.rsplit(':', 1)[1]}")
    queue = f"honest-{uuid.uuid4()}"
    settings = make_settings(postgres_url, address, queue, temporal_answer_seconds=2.0, search_attributes=False)
    lifespan, client = await open_api(settings)
    api = Api(client)
    complaints: list[dict[str, Any]] = []
    gc.collect()  # what earlier tests left behind complains now, before the handler listens
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: complaints.append(context))
    key = {"Idempotency-Key": f"honest-{uuid.uuid4()}"}
    body = {"template_code": "HS_STD", "entity": {"name": "Patient Customer"}}
    try:
        async with build_worker(server.client, engine, queue, settings):
            os.kill(frozen, signal.SIGSTOP)
            try:
                waited = await api.request("POST", "/api/v1/workflow-instance", role="operator", json=body, headers=key)
            finally:
                os.kill(frozen, signal.SIGCONT)
            assert waited.status_code in (503, 504), waited.text
            detail = waited.json()["detail"]
            assert "may still be applied" in detail and "process-" in detail and "Idempotency-Key" in detail
            assert "nothing was changed" not in detail
            for _ in range(100):  # Temporal answers again: the same key gives the one instance
                retried = await api.request(
                    "POST", "/api/v1/workflow-instance", role="operator", json=body, headers=key
                )
                if retried.status_code == 201:
                    break
                await asyncio.sleep(0.2)
            assert retried.status_code == 201, retried.text
            again = await api.request("POST", "/api/v1/workflow-instance", role="operator", json=body, headers=key)
            assert again.json()["instance_id"] == retried.json()["instance_id"]
            assert retried.json()["workflow_id"] in detail
    finally:
        with suppress(ProcessLookupError):
            os.kill(frozen, signal.SIGCONT)
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        await server.shutdown()
        gc.collect()
        loop.set_exception_handler(None)
    # The SDK also hands a timed-out start's error to the start operation; unretrieved, asyncio logs
    # "Future exception was never retrieved" with a traceback for every such request.
    assert not [c for c in complaints if "never retrieved" in str(c.get("message"))], complaints
