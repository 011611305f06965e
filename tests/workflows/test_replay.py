"""Replay: committed histories of the process workflow must replay on the current code, so a change
that breaks determinism for instances in flight fails here. Fresh histories from this run replay too.

Re-record the committed histories (after an intended, versioned change) with
``TRELLIS_RECORD_HISTORIES=1 make test``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.conftest import Api
from workflows.process_instance import ProcessInstanceWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "histories"


def replayer() -> Replayer:
    return Replayer(workflows=[ProcessInstanceWorkflow], data_converter=pydantic_data_converter)


async def scenario_histories(api: Api, client: Client) -> dict[str, WorkflowHistory]:
    """Runs covering every handler: the UC-2 path, approval granted, approval rejected to a terminal."""
    runs: dict[str, str] = {}
    uc2 = await api.start("HS_STD", name="Replay Customer")
    for state in (1, 2, 3, 4, 6, 7, 8, 9):
        assert (await api.transition(uc2["instance_id"], state)).status_code == 200
    runs["hs_std_success"] = uc2["workflow_id"]

    approved = await api.start("CONST_RES", name="Replay Build")
    for state in (1, 2, 3, 4):
        assert (await api.transition(approved["instance_id"], state)).status_code == 200
    assert (await api.transition(approved["instance_id"], 5)).status_code == 409
    assert (await api.decide(approved["instance_id"], "approve", comment="countersigned")).status_code == 200
    for state in (5, 10):
        assert (await api.transition(approved["instance_id"], state)).status_code == 200
    runs["const_res_approved_permit_denied"] = approved["workflow_id"]

    rejected = await api.start("ELEC_COMM", name="Replay Tower")
    for state in (1, 2):
        assert (await api.transition(rejected["instance_id"], state)).status_code == 200
    assert (await api.decide(rejected["instance_id"], "reject", comment="over budget")).status_code == 200
    runs["elec_comm_rejected"] = rejected["workflow_id"]

    return {name: await client.get_workflow_handle(wid).fetch_history() for name, wid in runs.items()}


async def test_fresh_histories_replay(api: Api, temporal_client: Client) -> None:
    histories = await scenario_histories(api, temporal_client)
    for history in histories.values():
        await replayer().replay_workflow(history)
    if os.environ.get("TRELLIS_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            (HISTORIES / f"process_instance_{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("process_instance_*.json")), ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await replayer().replay_workflow(history)


def test_histories_are_committed() -> None:
    assert len(list(HISTORIES.glob("process_instance_*.json"))) >= 3
