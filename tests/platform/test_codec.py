"""Secrets and personal data stay out of Temporal: with payload keys set, canary strings put in entity
fields, entity names, webhook headers, session goals and context, and LLM replies appear 0 times in
the dev server's database file, while a control string sent without encryption is found there; and
the codec endpoint gives people with an API key the decrypted payloads back."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from core.platform.codec import new_key
from core.platform.embedded import start_temporal_dev_server
from core.platform.temporal import connect_client
from tests.support.agents import until
from tests.support.api import Api, make_settings, open_api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.servers import LlmServer, WebhookServer
from worker import build_worker, condition_evaluator
from workflows.automation.dispatcher import OutboxDispatcher


def _stored(folder: Path) -> bytes:
    """Everything the dev server wrote: the SQLite file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("temporal.db*")))


async def test_payloads_are_encrypted_and_decodable_through_the_api(
    tmp_path: Path,
    postgres_url: str,
    engine: AsyncEngine,
    webhook_server: WebhookServer,
    llm_server: LlmServer,
    worker: None,
) -> None:
    server = await start_temporal_dev_server(db_file=tmp_path / "temporal.db")
    address = server.client.service_client.config.target_host
    queue = f"codec-{uuid.uuid4()}"
    settings = make_settings(
        postgres_url, address, queue, payload_keys=f"k1:{new_key()}", names_in_temporal=False, search_attributes=False
    )
    canary = {
        name: f"canary-{name}-{uuid.uuid4().hex}" for name in ("field", "name", "header", "goal", "context", "llm")
    }
    client = await connect_client(settings)
    stop = asyncio.Event()
    evaluator = condition_evaluator(settings)
    dispatcher = asyncio.create_task(OutboxDispatcher(engine, client, settings, evaluator).run(stop))
    lifespan, http = await open_api(settings)
    api = Api(http)
    try:
        async with build_worker(client, engine, queue, settings, evaluator):
            # A control: a payload sent without encryption must be found in the file.
            plain = await Client.connect(address, data_converter=pydantic_data_converter)
            control = f"control-{uuid.uuid4().hex}"
            await plain.start_workflow("NobodyRunsThis", control, id=f"control-{uuid.uuid4()}", task_queue="nobody")

            instance = await api.start(
                "HS_STD", name=canary["name"], entity={"name": canary["name"], "fields": {"note": canary["field"]}}
            )
            assert (
                await api.transition(instance["instance_id"], 1, fields={"note2": canary["field"]})
            ).status_code == 200

            kind = unique_type("codec")
            rule = await create_rule(
                api,
                kind,
                [
                    {
                        "type": "call_webhook",
                        "url": f"http://127.0.0.1:{webhook_server.port}/ok/{kind}",
                        "headers": {"x-canary": canary["header"]},
                    }
                ],
            )
            await create_entity(api, kind, canary["name"], fields={"secret": canary["field"]})
            [run] = await finished_executions(api, rule["id"], 1)
            assert run["status"] == "completed", run

            case = uuid.uuid4().hex[:10]
            phases = [{"name": canary["llm"], "duration_days": 1, "tasks": ["t"]}]
            llm_server.script(case, "planner", [{"phases": phases}])
            started = await api.request(
                "POST",
                "/api/v1/orchestrator/session",
                role="operator",
                json={
                    "goal": f"[case:{case}] {canary['goal']}",
                    "context": {"site": canary["context"]},
                    "agents": ["planner", "reporter"],
                },
            )
            assert started.status_code == 201, started.text
            done = await until(api, started.json()["session_id"])
            assert done["session_status"] == "completed"
            assert done["final_output"]["outputs"]["planner"]["phases"][0]["name"] == canary["llm"]

            # What Temporal stored, read raw (no codec): encrypted. Decrypted through the API.
            history = await plain.get_workflow_handle(instance["workflow_id"]).fetch_history()
            payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
            assert payload.metadata["encoding"] == b"binary/encrypted" and canary["name"].encode() not in payload.data
            body = {
                "payloads": [
                    {
                        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
                        "data": base64.b64encode(payload.data).decode(),
                    }
                ]
            }
            # Without a key: a readable placeholder where the payload was, nothing decrypted (decision 0015).
            refused = await api.request("POST", "/codec/decode", role=None, json=body)
            assert refused.status_code == 200 and refused.headers["X-Trellis-Codec"] == "not-decoded"
            assert canary["field"] not in base64.b64decode(refused.json()["payloads"][0]["data"]).decode()
            decoded = await api.request("POST", "/codec/decode", role="viewer", json=body)
            assert decoded.status_code == 200
            assert canary["field"].encode() in base64.b64decode(decoded.json()["payloads"][0]["data"])
    finally:
        stop.set()
        await dispatcher
        evaluator.close()
        await http.aclose()
        await lifespan.__aexit__(None, None, None)
        await server.shutdown()
    stored = _stored(tmp_path)
    assert control.encode() in stored  # the file is readable as it is: the control string is there
    for name, value in canary.items():
        assert stored.count(value.encode()) == 0, f"the {name} canary is in Temporal's database"
