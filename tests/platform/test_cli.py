"""Reading Trellis runs with the real `temporal` CLI (issue 20, items 14 and 15): with payload keys set,
summaries stay readable in Temporal, the CLI decodes payloads and failures through the API's codec,
a wrong key answers a readable reason at once (not a 10 s "context deadline exceeded"), and a failure
is cut to fit the server's 4 KB limit before it leaves the worker."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from api.main import create_app
from core.platform.codec import FAILURE_MESSAGE_CHARS, data_converter, new_key
from core.platform.embedded import temporal_cli_path
from core.platform.temporal import connect_client
from tests.support.api import TOKENS, Api, make_settings, open_api
from tests.support.served import serve
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, unique_name, workflow
from worker import build_worker, condition_evaluator

KEY = f"k1:{new_key()}"


async def _cli(*args: str) -> tuple[int, str, str]:
    """The real CLI, bounded: a hang fails the test instead of stalling the suite."""
    process = await asyncio.create_subprocess_exec(
        temporal_cli_path(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


def _failures(history: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        event["activityTaskFailedEventAttributes"]["failure"]
        for event in history["events"]
        if "activityTaskFailedEventAttributes" in event
    ]


@pytest.fixture
async def encrypted(
    postgres_url: str, temporal_address: str, engine: AsyncEngine, worker: None
) -> AsyncIterator[tuple[Api, str, str]]:
    """A worker and an API with payload keys on the session's servers (and the session's service
    settings, which the session worker sets); the API also served over HTTP for the CLI. Yields the
    API, its URL and the task queue."""
    queue = f"cli-{uuid.uuid4()}"
    settings = make_settings(postgres_url, temporal_address, queue, payload_keys=KEY, names_in_temporal=False)
    client = await connect_client(settings)
    evaluator = condition_evaluator(settings)
    lifespan, http = await open_api(settings)
    app = create_app(settings)
    try:
        async with build_worker(client, engine, queue, settings, evaluator), app.router.lifespan_context(app):
            async with serve(app) as url:
                yield Api(http), url, queue
    finally:
        evaluator.close()
        await http.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_the_cli_reads_summaries_payloads_and_failures_and_says_why_a_key_is_refused(
    encrypted: tuple[Api, str, str], temporal_address: str, webhook_server: WebhookServer
) -> None:
    api, url, _ = encrypted
    instance = await api.start("HS_STD", name="Jane Canary")
    name = unique_name("cli")
    await create(
        api,
        workflow(
            name,
            [{"name": "call", "tool": "http.request", "params": {"url": webhook_server.url(f"/fail/{name}")}}],
            maxRetries=1,
        ),
    )
    failed = await finished(api, (await execute(api, name))["id"])
    assert failed["status"] == "failed", failed
    run_id = failed["temporal_workflow_id"]

    # Raw, with no codec: the summaries are plain text; inputs and failures are not.
    raw = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    started = (await raw.get_workflow_handle(instance["workflow_id"]).fetch_history()).events[0]
    summary = started.user_metadata.summary
    assert b"v1" in summary.data and summary.metadata["encoding"] == b"json/plain", summary
    calls = [
        e.user_metadata.summary.data
        for e in (await raw.get_workflow_handle(run_id).fetch_history()).events
        if e.HasField("activity_task_scheduled_event_attributes") and e.HasField("user_metadata")
    ]
    assert b'"call: http.request"' in calls, calls  # an activity's summary, readable
    payload = started.workflow_execution_started_event_attributes.input.payloads[0]
    assert payload.metadata["encoding"] == b"binary/encrypted" and b"Jane Canary" not in payload.data

    code, described, _ = await _cli(
        "workflow", "describe", "--address", temporal_address, "-w", instance["workflow_id"]
    )  # fmt: skip
    assert code == 0 and "StaticSummary" in described and " v1" in described, described

    # With the codec and a viewer's key: the history's payloads and the failures' attributes decoded.
    codec = ["--codec-endpoint", f"{url}/codec"]
    code, shown, err = await _cli(
        "workflow", "show", "--address", temporal_address, "-w", run_id, "-o", "json",
        *codec, "--codec-auth", f"Bearer {TOKENS['viewer']}",
    )  # fmt: skip
    assert code == 0, err
    [failure, *_] = _failures(json.loads(shown))
    attributes = failure["encodedAttributes"]
    assert base64.b64decode(attributes["metadata"]["encoding"]) == b"json/plain", attributes
    decoded = json.loads(base64.b64decode(attributes["data"]))
    assert "500" in decoded["message"], decoded

    # A wrong key: the CLI ends at once and shows the reason where the payloads would be; nothing of
    # the run is decrypted.
    code, shown, err = await _cli(
        "workflow", "show", "--address", temporal_address, "-w", instance["workflow_id"], "-o", "json",
        *codec, "--codec-auth", "Bearer not-a-key",
    )  # fmt: skip
    assert code == 0, err
    assert "Jane Canary" not in shown
    inputs = json.loads(shown)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    reason = json.loads(base64.b64decode(inputs[0]["data"]))
    assert "the API key was not accepted" in reason and "--codec-auth" in reason, reason

    # /codec/encode still refuses a request without a valid key.
    body = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": ""}]}
    assert (await api.request("POST", "/codec/encode", role=None, json=body)).status_code == 401


async def test_a_failure_is_cut_to_fit_the_server_limit_and_keeps_its_beginning() -> None:
    """A long message with a deep chain of causes, each with a stack trace: the encrypted failure stays
    under the 4 KB the server keeps (beyond it shows "Failure exceeds size limit"), and decodes to the
    message's beginning."""
    converter = data_converter(KEY)

    def chain(depth: int) -> BaseException:
        try:
            if depth == 0:
                raise ValueError("root cause " + "r" * 5000)
            raise RuntimeError(f"level {depth} " + "m" * 5000) from chain(depth - 1)
        except BaseException as exc:
            return exc

    failure = Failure()
    await converter.encode_failure(chain(8), failure)
    assert failure.ByteSize() < 4096, failure.ByteSize()
    depth, level = 1, failure
    while level.HasField("cause"):
        depth, level = depth + 1, level.cause
    assert depth == 4 and level.message == "Encoded failure"

    back = await converter.decode_failure(failure)
    assert isinstance(back, ApplicationError) and back.type == "RuntimeError"
    assert back.message.startswith("level 8 mmm") and back.message.endswith("(cut)")
    assert len(back.message) == FAILURE_MESSAGE_CHARS
