"""Every industry pack driven from its start to each of its terminal states, through the API."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.process.contracts import WorkflowGraph
from core.process.templates import read_packs
from tests.support.api import Api
from tests.support.process import events_of, graph_row, path_to

CASES = [(pack.code, state.id) for pack in read_packs() for state in pack.workflow_graph.states if state.terminal_flag]


async def drive(api: Api, graph: WorkflowGraph, code: str, terminal: int) -> str:
    states = {s.id: s for s in graph.states}
    instance = await api.start(code, name=f"{code} customer {terminal}")
    current = instance["current_state"]["id"]
    for target in path_to(graph, terminal):
        gate = states[current].approval
        if gate is not None and gate.reject_to_state_id == target:
            response = await api.decide(instance["instance_id"], "reject", comment="declined")
            assert response.status_code == 200, response.text
        else:
            if gate is not None:
                response = await api.decide(instance["instance_id"], "approve", comment="ok")
                assert response.status_code == 200, response.text
            response = await api.transition(instance["instance_id"], target)
            assert response.status_code == 200, response.text
        assert response.json()["current_state"]["id"] == target
        current = target
    return str(instance["instance_id"])


@pytest.mark.parametrize("code", sorted({code for code, _ in CASES}))
async def test_pack_reaches_every_terminal(api: Api, engine: AsyncEngine, code: str) -> None:
    pack = next(p for p in read_packs() if p.code == code)
    terminals = [s for s in pack.workflow_graph.states if s.terminal_flag]
    ids = await asyncio.gather(*(drive(api, pack.workflow_graph, code, t.id) for t in terminals))
    for instance_id, terminal in zip(ids, terminals, strict=True):
        view = await api.get(instance_id)
        assert view["workflow_status"] == "completed"
        assert view["current_state"]["id"] == terminal.id
        assert view["success"] is terminal.success
        row = await graph_row(engine, instance_id)
        assert row["success_flag"] is terminal.success and row["completed_ts"] is not None
        events = await events_of(engine, instance_id)
        assert next(e for e in events if e["event_type"] == "instance_completed")["payload"] == {
            "success": terminal.success
        }
