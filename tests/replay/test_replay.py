"""Replay: committed histories of every workflow type must replay on the current code, so a change that
breaks determinism for runs in flight fails here.

``histories/`` holds one history per workflow type and major path (tests/support/histories.py makes
them); ``histories/legacy/`` holds histories recorded by earlier code (before the tree by domain, the
typed action registry and the dispatcher's own matching), which must keep replaying too: they stand
for runs started before an upgrade. Fresh histories of this run replay as well.

After an intended, versioned change, re-record with ``TRELLIS_RECORD_HISTORIES=1 make test`` and say in
the commit why no run in flight is affected.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import _Definition

from tests.support import histories
from tests.support.api import Api, make_settings, open_api
from tests.support.servers import LlmServer, WebhookServer
from worker import WORKFLOWS


def workflow_definition(cls: type) -> _Definition:
    return _Definition.must_from_class(cls)


HISTORIES = Path(__file__).resolve().parent / "histories"
COMMITTED = sorted(HISTORIES.rglob("*.json"))


def replayer() -> Replayer:
    return Replayer(
        workflows=list(WORKFLOWS),
        data_converter=pydantic_data_converter,
    )


@pytest.fixture
async def short_history_api(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None
) -> AsyncIterator[Api]:
    """An API whose sessions continue as new after 20 history events."""
    lifespan, client = await open_api(
        make_settings(postgres_url, temporal_address, task_queue, session_history_limit=20)
    )
    try:
        yield Api(client)
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_fresh_histories_replay(
    api: Api,
    short_history_api: Api,
    temporal_client: Client,
    webhook_server: WebhookServer,
    llm_server: LlmServer,
) -> None:
    stage = histories.Stage(api, short_history_api, temporal_client, f"http://127.0.0.1:{webhook_server.port}")
    fresh = await histories.run_all(stage, llm_server)
    for history in fresh.values():
        await replayer().replay_workflow(history)
    if os.environ.get("TRELLIS_RECORD_HISTORIES") == "1":
        for name, history in fresh.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    committed = {p.stem for p in HISTORIES.glob("*.json")}
    assert set(fresh) <= committed, f"scenarios without a committed history: {sorted(set(fresh) - committed)}"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(HISTORIES).with_suffix("")))
async def test_committed_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await replayer().replay_workflow(history)


def test_every_workflow_type_has_committed_histories() -> None:
    kinds = {
        WorkflowHistory.from_json(p.stem, p.read_text())
        .events[0]
        .workflow_execution_started_event_attributes.workflow_type.name
        for p in COMMITTED
    }
    assert kinds == {defn.name for defn in map(workflow_definition, replayer().config()["workflows"])}
    assert len(COMMITTED) >= 20
