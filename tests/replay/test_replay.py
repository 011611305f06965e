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

from tests.support.agents import start as start_session
from tests.support.agents import until as session_until
from tests.support.api import Api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from workflows.agents.session import AgentSessionWorkflow
from workflows.automation.chain import AutomationChainWorkflow
from workflows.automation.entity_event import EntityEventWorkflow, event_workflow_id
from workflows.process.instance import ProcessInstanceWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"


def replayer() -> Replayer:
    return Replayer(
        workflows=[ProcessInstanceWorkflow, EntityEventWorkflow, AutomationChainWorkflow, AgentSessionWorkflow],
        data_converter=pydantic_data_converter,
    )


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

    kind = unique_type("replay")
    rule = await create_rule(
        api,
        kind,
        [
            {"type": "update_field", "field": "seen", "value": True},
            {"type": "send_notification", "template": "task_assigned", "recipients": ["replay"]},
        ],
    )
    await create_entity(api, kind, "Replayed")
    [run] = await finished_executions(api, rule["id"], 1)
    runs["entity_event"] = event_workflow_id(run["event_id"])
    runs["automation_chain"] = run["workflow_id"]

    session = await start_session(
        api, "replay", agents=["planner", "estimator", "risk", "reporter"], approval_required=True
    )
    await session_until(api, session["session_id"], ("awaiting_approval",))
    await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{session['session_id']}/approval",
        role="approver",
        json={"decision": "reject", "comment": "tighten the schedule"},
    )
    await session_until(api, session["session_id"], ("awaiting_approval",))
    await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{session['session_id']}/approval",
        role="approver",
        json={"decision": "approve"},
    )
    await session_until(api, session["session_id"])
    runs["agent_session"] = session["workflow_id"]

    return {name: await client.get_workflow_handle(wid).fetch_history() for name, wid in runs.items()}


async def test_fresh_histories_replay(api: Api, temporal_client: Client) -> None:
    histories = await scenario_histories(api, temporal_client)
    for history in histories.values():
        await replayer().replay_workflow(history)
    if os.environ.get("TRELLIS_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await replayer().replay_workflow(history)


def test_histories_are_committed() -> None:
    names = {p.stem for p in HISTORIES.glob("*.json")}
    assert {"hs_std_success", "entity_event", "automation_chain", "agent_session"} <= names
