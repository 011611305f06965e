"""Scenarios whose workflow histories are committed for replay: one per workflow type and per major
path (approvals granted, rejected, escalated and defaulted on timeout; chains completed, failed and
dead-lettered; several rules of one event; a scheduled rule; a redelivery; agent sessions completed,
revised, over budget, failed, cancelled, timed out and continued as new).

Each scenario drives the real API against the real servers and returns the workflow ids (and, for
continue-as-new, the run id) whose histories it produced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHistory

from tests.support.agents import case, until
from tests.support.agents import start as start_session
from tests.support.api import Api, eventually
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.process import node, template, unique_code
from tests.support.work import act, customer, demo

Ref = tuple[str, str | None]  # (workflow id, run id or None for the latest run)
Scenario = Callable[["Stage"], Awaitable[Ref]]


class Stage:
    """What a scenario may use: the API (and one whose sessions continue as new early), the client,
    and the webhook receiver's base URL."""

    def __init__(self, api: Api, short_history_api: Api, client: Client, webhook_base: str) -> None:
        self.api = api
        self.short_history_api = short_history_api
        self.client = client
        self.webhook_base = webhook_base


# --------------------------------------------------------------------------- process instances


async def _gated(api: Api, **gate: Any) -> str:
    code = unique_code("REPLAY")
    states = [
        node(0, [], [1]),
        node(1, [0], [2, 3], approval={"roles": ["approver"], **gate}),
        node(2, [1], []),
        node(3, [1], [], success=False),
    ]
    response = await api.request("POST", "/api/v1/workflow-template", json=template(code, states))
    assert response.status_code == 201, response.text
    return code


async def process_success(stage: Stage) -> Ref:
    started = await stage.api.start("HS_STD", name="Replay Customer")
    for state in (1, 2, 3, 4, 6, 7, 8, 9):
        assert (await stage.api.transition(started["instance_id"], state)).status_code == 200
    return started["workflow_id"], None


async def process_approval_granted(stage: Stage) -> Ref:
    api = stage.api
    started = await api.start("CONST_RES", name="Replay Build")
    for state in (1, 2, 3, 4):
        assert (await api.transition(started["instance_id"], state)).status_code == 200
    assert (await api.transition(started["instance_id"], 5)).status_code == 409
    assert (await api.decide(started["instance_id"], "approve", comment="countersigned")).status_code == 200
    for state in (5, 10):
        assert (await api.transition(started["instance_id"], state)).status_code == 200
    return started["workflow_id"], None


async def process_rejected_to_terminal(stage: Stage) -> Ref:
    started = await stage.api.start("ELEC_COMM", name="Replay Tower")
    for state in (1, 2):
        assert (await stage.api.transition(started["instance_id"], state)).status_code == 200
    assert (await stage.api.decide(started["instance_id"], "reject", comment="over budget")).status_code == 200
    return started["workflow_id"], None


async def process_rejected_then_approved(stage: Stage) -> Ref:
    """A gate without a reject path stays closed after a rejection until someone approves."""
    api = stage.api
    started = await api.start(await _gated(api))
    iid = started["instance_id"]
    assert (await api.transition(iid, 1)).status_code == 200
    assert (await api.decide(iid, "reject", comment="not yet")).status_code == 200
    assert (await api.decide(iid, "approve", comment="now")).status_code == 200
    assert (await api.transition(iid, 2)).status_code == 200
    return started["workflow_id"], None


async def process_timeout_escalated(stage: Stage) -> Ref:
    api = stage.api
    started = await api.start(await _gated(api, timeout_seconds=1, escalate_to=["ops-lead"]))
    iid = started["instance_id"]
    assert (await api.transition(iid, 1)).status_code == 200

    async def escalated() -> bool:
        pending = (await api.get(iid))["pending_approval"]
        return bool(pending and pending["escalated"])

    await eventually(escalated, attempts=100)
    assert (await api.decide(iid, "approve")).status_code == 200
    assert (await api.transition(iid, 2)).status_code == 200
    return started["workflow_id"], None


async def process_timeout_default_path(stage: Stage) -> Ref:
    api = stage.api
    started = await api.start(await _gated(api, timeout_seconds=1, on_timeout="default_path", default_to_state_id=3))
    iid = started["instance_id"]
    assert (await api.transition(iid, 1)).status_code == 200

    async def defaulted() -> bool:
        return (await api.get(iid))["workflow_status"] == "completed"

    await eventually(defaulted, attempts=100)
    return started["workflow_id"], None


# --------------------------------------------------------------------------- automation


async def chain_completed(stage: Stage) -> Ref:
    kind = unique_type("replay")
    rule = await create_rule(
        stage.api,
        kind,
        [
            {"type": "update_field", "field": "seen", "value": True},
            {"type": "send_notification", "template": "task_assigned", "recipients": ["replay"]},
        ],
    )
    await create_entity(stage.api, kind, "Replayed")
    [run] = await finished_executions(stage.api, rule["id"], 1)
    assert run["status"] == "completed", run
    return run["workflow_id"], None


async def chain_action_failed(stage: Stage) -> Ref:
    kind = unique_type("replay")
    rule = await create_rule(
        stage.api,
        kind,
        [{"type": "update_field", "field": "x", "value": 1, "target": "parent", "target_entity_type": "nothing"}],
    )
    await create_entity(stage.api, kind, "Orphan")
    [run] = await finished_executions(stage.api, rule["id"], 1)
    assert run["status"] == "failed", run
    return run["workflow_id"], None


async def _dead_letter(stage: Stage) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = unique_type("replay")
    rule = await create_rule(stage.api, kind, [{"type": "call_webhook", "url": f"{stage.webhook_base}/fail/{kind}"}])
    await create_entity(stage.api, kind, "Unlucky")
    [run] = await finished_executions(stage.api, rule["id"], 1)
    assert run["status"] == "failed" and "dead-lettered" in (run["reason"] or ""), run
    letters = await stage.api.request("GET", f"/api/v1/webhook-dead-letters?rule_id={rule['id']}", role="viewer")
    [letter] = letters.json()["items"]
    return run, letter


async def chain_webhook_dead_letter(stage: Stage) -> Ref:
    run, _ = await _dead_letter(stage)
    return run["workflow_id"], None


async def webhook_redelivery(stage: Stage) -> Ref:
    _, letter = await _dead_letter(stage)
    answer = await stage.api.request("POST", f"/api/v1/webhook-dead-letters/{letter['id']}/redeliver", role="operator")
    assert answer.status_code == 200, answer.text
    query = f"WorkflowType = 'WebhookRedelivery' AND WorkflowId STARTS_WITH 'webhook-redelivery-{letter['id']}'"
    [found] = [w async for w in stage.client.list_workflows(query)]
    return found.id, None


async def event_with_several_rules(stage: Stage) -> Ref:
    kind = unique_type("replay")
    first = await create_rule(
        stage.api, kind, [{"type": "update_field", "field": "first", "value": 1}], execution_order=1
    )
    second = await create_rule(
        stage.api, kind, [{"type": "update_field", "field": "second", "value": 2}], execution_order=2
    )
    await create_entity(stage.api, kind, "Twice")
    await finished_executions(stage.api, first["id"], 1)
    [run] = await finished_executions(stage.api, second["id"], 1)
    return f"entity-event-{run['event_id']}", None


async def scheduled_rule(stage: Stage) -> Ref:
    kind = unique_type("replay")
    target = await create_entity(stage.api, kind, "On a schedule")
    rule = await create_rule(
        stage.api,
        kind,
        [{"type": "update_field", "field": "ticked", "value": True}],
        trigger_action_type="scheduled",
        schedule_cron="0 3 1 1 *",
        trigger_scope="specific",
        trigger_entity_id=target["id"],
    )
    await stage.client.get_schedule_handle(f"automation-schedule-{rule['id']}").trigger()
    [run] = await finished_executions(stage.api, rule["id"], 1)
    assert run["status"] == "completed", run
    query = f"WorkflowType = 'ScheduledRule' AND TrellisRuleId = '{rule['id']}'"

    async def closed() -> list[Any]:
        runs = [w async for w in stage.client.list_workflows(query)]
        return [w for w in runs if w.status == WorkflowExecutionStatus.COMPLETED]

    [found] = await eventually(closed)
    return found.id, None


# --------------------------------------------------------------------------- agent sessions


async def _decide(api: Api, session_id: str, decision: str, comment: str | None = None) -> None:
    response = await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{session_id}/approval",
        role="approver",
        json={"decision": decision, **({"comment": comment} if comment else {})},
    )
    assert response.status_code == 200, response.text


async def session_completed(stage: Stage) -> Ref:
    started = await start_session(stage.api, case())
    assert (await until(stage.api, started["session_id"]))["session_status"] == "completed"
    return started["workflow_id"], None


async def session_revised_then_approved(stage: Stage) -> Ref:
    api = stage.api
    started = await start_session(
        api, case(), agents=["planner", "estimator", "risk", "reporter"], approval_required=True
    )
    await until(api, started["session_id"], ("awaiting_approval",))
    await _decide(api, started["session_id"], "reject", "tighten the schedule")
    await until(api, started["session_id"], ("awaiting_approval",))
    await _decide(api, started["session_id"], "approve")
    assert (await until(api, started["session_id"]))["session_status"] == "completed"
    return started["workflow_id"], None


async def session_budget_exceeded(stage: Stage) -> Ref:
    started = await start_session(stage.api, case(), token_budget=400)
    assert (await until(stage.api, started["session_id"]))["session_status"] == "budget_exceeded"
    return started["workflow_id"], None


async def session_invalid_output(stage: Stage, llm: Any) -> Ref:
    c = case()
    llm.script(c, "planner", ["malformed", "schema-miss"])
    started = await start_session(stage.api, c, agents=["planner", "reporter"])
    assert (await until(stage.api, started["session_id"]))["session_status"] == "failed"
    return started["workflow_id"], None


async def session_cancelled(stage: Stage, llm: Any) -> Ref:
    c = case()
    llm.script(c, "planner", [("slow", 2.0, None)])
    started = await start_session(stage.api, c, agents=["planner", "reporter"])
    await until(stage.api, started["session_id"], ("running",))
    await asyncio.sleep(0.5)
    cancelled = await stage.api.request(
        "POST", f"/api/v1/orchestrator/session/{started['session_id']}/cancel", role="operator"
    )
    assert cancelled.status_code == 200
    assert (await until(stage.api, started["session_id"]))["session_status"] == "cancelled"
    return started["workflow_id"], None


async def session_approval_timed_out(stage: Stage) -> Ref:
    started = await start_session(
        stage.api, case(), agents=["planner"], approval_required=True, approval_timeout_seconds=1
    )
    assert (await until(stage.api, started["session_id"]))["session_status"] == "failed"
    return started["workflow_id"], None


async def session_continued_as_new(stage: Stage) -> Ref:
    started = await start_session(stage.short_history_api, case())
    done = await until(stage.short_history_api, started["session_id"])
    assert done["session_status"] == "completed" and done["state"]["runs"] >= 2
    runs = [w async for w in stage.client.list_workflows(f"WorkflowId = '{started['workflow_id']}'")]
    first = next(w for w in runs if w.status == WorkflowExecutionStatus.CONTINUED_AS_NEW)
    return started["workflow_id"], first.run_id


# --------------------------------------------------------------------------- work items


async def work_item_lifecycle(stage: Stage) -> Ref:
    entity = await customer(stage.api, revenue_impact_tier=3, churn_risk_score=6)
    item = (await demo(stage.api, entity, "operator-user"))[2]
    for path, method, body in (
        ("snooze", "POST", {"days": 7}),
        ("escalate", "POST", {"escalation_user_id": "approver-user"}),
        ("status", "PATCH", {"status": "underway", "execution_data": {"call": "booked"}}),
        ("status", "PATCH", {"status": "completed"}),
    ):
        assert (await act(stage.api, "operator", item["id"], path, method, **body)).status_code == 200
    return item["workflow_id"], None


async def work_signals(stage: Stage) -> Ref:
    kind = unique_type("replay_signals")
    created = await stage.api.request(
        "POST",
        "/api/v1/orchestrator/definitions",
        json={
            "name": f"Replay {kind}",
            "workflow_type": "risk",
            "trigger_conditions": {"risk_score_min": 1, "entity_type": kind},
        },
    )
    assert created.status_code == 201, created.text
    await customer(stage.api, entity_type=kind, churn_risk_score=4)
    run = await stage.api.request("POST", "/api/v1/orchestrator/signals/interpret", role="operator")
    assert run.status_code == 200, run.text
    return run.json()["workflow_id"], None


# --------------------------------------------------------------------------- step workflows


async def step_execution(stage: Stage) -> Ref:
    """A step workflow through its main paths: an entity created with typed references, a flaky call
    retried on linear backoff timers, an agent asked, a CEL condition false (skipped), a notification."""
    name = unique_type("replay_steps")
    flaky = f"{stage.webhook_base}/flaky/{name}"
    definition = {
        "name": name,
        "steps": [
            {
                "name": "make",
                "tool": "entity.create",
                "params": {
                    "entity_type": "replay_steps",
                    "name": "${input.label}",
                    "fields": {"total": "${input.total}"},
                },
            },
            {
                "name": "call",
                "tool": "http.request",
                "params": {"url": flaky, "method": "POST", "body": "${make.fields}"},
                "retry": {"maxAttempts": 3, "backoff": "linear", "initialIntervalMs": 100},
            },
            {
                "name": "ask",
                "tool": "agent.call",
                "params": {"agent": "analyzer", "input": {"total": "${make.fields.total}"}},
            },
            {
                "name": "never",
                "tool": "entity.update",
                "params": {"id": "${make.id}", "status": "Never"},
                "if": "make.fields.total > 1000000",
            },
            {
                "name": "tell",
                "tool": "notify.send",
                "params": {
                    "recipients": ["operator"],
                    "subject": "${input.label}",
                    "body": "${ask.output.insights[0]}",
                },
            },
        ],
        "config": {"timeoutMs": 120000},
    }
    created = await stage.api.request("POST", "/api/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    started = await stage.api.request(
        "POST", f"/api/v1/workflows/{name}/execute", role="operator", json={"input": {"label": "replay", "total": 12.5}}
    )
    assert started.status_code == 202, started.text

    async def done() -> dict[str, Any] | None:
        found = (await stage.api.request("GET", f"/api/v1/workflow-executions/{started.json()['id']}")).json()
        return found if found["status"] in ("completed", "failed") else None

    finished = await eventually(done, attempts=300)
    assert finished["status"] == "completed", finished
    return finished["temporal_workflow_id"], None


async def step_control_flow(stage: Stage) -> Ref:
    """Seed 004's constructs in one run: parallel branches, a CEL branch, a foreach at concurrency 2, a
    scheduled step, then a failure whose compensate strategy unwinds the saga (status compensated)."""
    name = unique_type("replay_flow")
    ok = f"{stage.webhook_base}/ok/{name}"
    undo = {"strategy": "compensate", "compensationStep": "undo_make"}
    definition = {
        "name": name,
        "steps": [
            {
                "name": "make",
                "tool": "entity.create",
                "params": {"entity_type": "replay_flow", "name": "${input.label}"},
                "onError": undo,
            },
            {
                "name": "fanout",
                "parallel": {
                    "branches": [
                        {
                            "name": "left",
                            "steps": [{"name": "call_left", "tool": "http.request", "params": {"url": f"{ok}-l"}}],
                        },
                        {
                            "name": "right",
                            "steps": [{"name": "call_right", "tool": "http.request", "params": {"url": f"{ok}-r"}}],
                        },
                    ]
                },
            },
            {
                "name": "route",
                "branch": {
                    "condition": "input.total > 10",
                    "then": [{"name": "big", "tool": "entity.update", "params": {"id": "${make.id}", "status": "Big"}}],
                    "else": [
                        {"name": "small", "tool": "entity.update", "params": {"id": "${make.id}", "status": "Small"}}
                    ],
                },
            },
            {
                "name": "each",
                "foreach": {
                    "items": "${input.lines}",
                    "as": "line",
                    "concurrency": 2,
                    "steps": [{"name": "line_call", "tool": "http.request", "params": {"url": f"{ok}-${{line}}"}}],
                },
            },
            {
                "name": "poll",
                "tool": "http.request",
                "params": {"url": f"{ok}-poll"},
                "schedule": {"everyMs": 1000, "maxRuns": 2},
            },
            {
                "name": "fail",
                "tool": "http.request",
                "params": {"url": f"{stage.webhook_base}/gone/{name}"},
                "onError": {"strategy": "compensate", "compensationStep": "undo_make"},
            },
        ],
        "compensations": [
            {"name": "undo_make", "tool": "entity.update", "params": {"id": "${make.id}", "status": "Undone"}}
        ],
        "config": {"timeoutMs": 120000},
    }
    created = await stage.api.request("POST", "/api/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    started = await stage.api.request(
        "POST",
        f"/api/v1/workflows/{name}/execute",
        role="operator",
        json={"input": {"label": "flow", "total": 12, "lines": ["a", "b", "c"]}},
    )
    assert started.status_code == 202, started.text

    async def done() -> dict[str, Any] | None:
        found = (await stage.api.request("GET", f"/api/v1/workflow-executions/{started.json()['id']}")).json()
        return found if found["status"] in ("completed", "failed", "compensated") else None

    finished = await eventually(done, attempts=300)
    assert finished["status"] == "compensated", finished
    return finished["temporal_workflow_id"], None


# --------------------------------------------------------------------------- change while running


async def _paused_and_migrated(stage: Stage) -> tuple[str, str]:
    """An instance paused and resumed, then migrated to a new version (its open approval carried, a
    deadline restarted), then moved on the new graph to its end: (instance workflow, migration id)."""
    api = stage.api
    code = unique_code("REPLAY_MIG")
    gate = {"roles": ["approver"], "timeout_seconds": 3600}
    v1 = [node(0, [], [1]), node(1, [0], [2], approval=gate), node(2, [1], [])]
    v2 = [
        node(0, [], [1]),
        node(1, [0], [3], approval=gate, avg_duration_days=1),
        node(3, [1], [2]),
        node(2, [3], []),
    ]
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, v1))).status_code == 201
    started = await api.start(code, name="Replay Migrated")
    instance = started["instance_id"]
    path = f"/api/v1/workflow-instance/{instance}"
    assert (await api.transition(instance, 1)).status_code == 200
    assert (await api.request("POST", f"{path}/pause", json={"reason": "replay"})).status_code == 200
    assert (await api.transition(instance, 2)).status_code == 409
    assert (await api.request("POST", f"{path}/resume", json={})).status_code == 200
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, v2))).status_code == 201
    plan = {"template_code": code, "from_version": 1, "to_version": 2, "rules": {"deadline": "restart"}}
    migration = await api.request("POST", "/api/v1/migrations", json={**plan, "batch_size": 5, "pause_ms": 0})
    assert migration.status_code == 202, migration.text
    migration_id = migration.json()["id"]

    async def migrated() -> bool:
        found = (await api.request("GET", f"/api/v1/migrations/{migration_id}")).json()
        return found["status"] == "completed" and found["totals"] == {"migrated": 1}

    await eventually(migrated, attempts=300)
    assert (await api.decide(instance, "approve")).status_code == 200
    for state in (3, 2):
        assert (await api.transition(instance, state)).status_code == 200
    return started["workflow_id"], migration_id


async def process_paused_and_migrated(stage: Stage) -> Ref:
    workflow_id, _ = await _paused_and_migrated(stage)
    return workflow_id, None


async def instance_migration(stage: Stage) -> Ref:
    _, migration_id = await _paused_and_migrated(stage)
    return f"migration-{migration_id}", None


async def step_paused(stage: Stage) -> Ref:
    """A step execution paused at once and resumed: its steps run after the resume."""
    name = unique_type("replay_pause")
    definition = {
        "name": name,
        "steps": [
            {"name": "call", "tool": "http.request", "params": {"url": f"{stage.webhook_base}/slow/{name}"}},
            {"name": "make", "tool": "entity.create", "params": {"entity_type": "replay_pause", "name": "after"}},
        ],
    }
    assert (await stage.api.request("POST", "/api/v1/workflows", json=definition)).status_code == 201
    started = await stage.api.request("POST", f"/api/v1/workflows/{name}/execute", role="operator", json={})
    execution = started.json()["id"]
    path = f"/api/v1/workflow-executions/{execution}"
    paused = await stage.api.request("POST", f"{path}/pause", role="operator", json={"reason": "replay"})
    assert paused.status_code == 200, paused.text
    await asyncio.sleep(0.5)
    assert (await stage.api.request("POST", f"{path}/resume", role="operator", json={})).status_code == 200

    async def done() -> dict[str, Any] | None:
        found = (await stage.api.request("GET", path)).json()
        return found if found["status"] in ("completed", "failed") else None

    finished = await eventually(done, attempts=300)
    assert finished["status"] == "completed", finished
    return finished["temporal_workflow_id"], None


async def _paused_then_forked(stage: Stage) -> tuple[str, str]:
    """A session paused and resumed while it awaits approval, approved, then forked from its validator
    stage (its carried outputs call no earlier agent): (the session's workflow, the fork's)."""
    api = stage.api
    agents = ["planner", "estimator", "risk", "validator", "reporter"]
    started = await start_session(api, case(), agents=agents, approval_required=True)
    session_id = started["session_id"]
    path = f"/api/v1/orchestrator/session/{session_id}"
    await until(api, session_id, ("awaiting_approval",))
    assert (await api.request("POST", f"{path}/pause", role="operator", json={"reason": "replay"})).status_code == 200
    assert (await api.request("POST", f"{path}/resume", role="operator", json={})).status_code == 200
    await _decide(api, session_id, "approve")
    assert (await until(api, session_id))["session_status"] == "completed"
    forked = await api.request("POST", f"{path}/fork", role="operator", json={"from_stage": 2})
    assert forked.status_code == 201, forked.text
    assert (await until(api, forked.json()["session_id"], ("awaiting_approval",)))["session_status"]
    await _decide(api, forked.json()["session_id"], "approve")
    assert (await until(api, forked.json()["session_id"]))["session_status"] == "completed"
    return started["workflow_id"], forked.json()["workflow_id"]


async def session_paused(stage: Stage) -> Ref:
    return (await _paused_then_forked(stage))[0], None


async def session_forked(stage: Stage) -> Ref:
    return (await _paused_then_forked(stage))[1], None


# --------------------------------------------------------------------------- agents that act, policies


async def _policy(api: Api, name: str, body: dict[str, Any]) -> None:
    assert (await api.request("PUT", f"/api/v1/policies/{name}", json=body)).status_code == 200


async def _approve_pending(api: Api, subject: str) -> None:
    async def found() -> dict[str, Any] | None:
        items = (await api.request("GET", "/api/v1/approvals?status=pending&limit=200")).json()["items"]
        return next((a for a in items if a["subject"] == subject), None)

    approval = await eventually(found, attempts=300)
    decided = await api.request(
        "POST", f"/api/v1/approvals/{approval['id']}/decision", role="approver", json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.text


async def _acting_session(stage: Stage, llm: Any) -> tuple[str, str]:
    """A session whose one agent calls two tools in parallel, one of them after an approval: (the
    session's workflow, the agent call's AgentActing workflow)."""
    api, c, name = stage.api, case(), unique_type("replay_clerk")
    body = {
        "agent_name": name,
        "agent_type": "clerk",
        "capabilities": ["records"],
        "system_prompt": f"You are the {name} agent.",
        "output_schema": {"type": "object", "properties": {"done": {"type": "boolean"}}, "required": ["done"]},
        "tools": [
            {"tool": "entity.create", "fixed": {"entity_type": "replay_acting"}},
            {"tool": "http.request", "fixed": {"url": f"{stage.webhook_base}/ok"}},
        ],
    }
    assert (await api.request("POST", "/api/v1/orchestrator/agents", json=body)).status_code == 201
    await _policy(
        api,
        f"replay-{name}".replace("_", "-"),
        {
            "subjects": {"agents": [name]},
            "target": {"kind": "tool", "tools": ["http.request"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    llm.script(
        c,
        name,
        [
            {
                "tool_calls": [
                    {"id": "a", "name": "entity_create", "arguments": {"name": "made by an agent"}},
                    {"id": "b", "name": "http_request", "arguments": {"path": name}},
                ]
            },
            {"done": True},
        ],
    )
    started = await start_session(api, c, agents=[name])
    await _approve_pending(api, name)
    done = await until(api, started["session_id"])
    assert done["session_status"] == "completed", done
    return started["workflow_id"], f"acting-{started['session_id']}:0:{name}:r0"


async def session_acting(stage: Stage, llm: Any) -> Ref:
    return (await _acting_session(stage, llm))[0], None


async def agent_acting(stage: Stage, llm: Any) -> Ref:
    return (await _acting_session(stage, llm))[1], None


async def policy_approval_transition(stage: Stage) -> Ref:
    """A transition a policy sent to an approver, approved, and performed by the approval."""
    code = unique_code("REPLAYPOL")
    states = [node(0, [], [1]), node(1, [0], [])]
    assert (
        await stage.api.request("POST", "/api/v1/workflow-template", json=template(code, states))
    ).status_code == 201
    await _policy(
        stage.api,
        f"replay-{code.lower()}".replace("_", "-"),
        {
            "target": {"kind": "transition", "template_code": code},
            "effect": "require_approval",
            "approval": {
                "approvers": {"roles": ["approver"]},
                "escalation": {"after_seconds": 1, "to": ["admin"]},
                "deadline_seconds": 600,
            },
        },
    )
    instance = (await stage.api.start(code))["instance_id"]
    asked = await stage.api.transition(instance, 1)
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval_id"]
    await asyncio.sleep(1.5)  # it escalates first
    decided = await stage.api.request(
        "POST", f"/api/v1/approvals/{approval}/decision", role="approver", json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.text
    return f"approval-{approval}", None


async def step_tool_approved(stage: Stage) -> Ref:
    """A step's tool call that waited for its approval, then ran."""
    name = unique_type("replay_policy")
    definition = {
        "name": name,
        "steps": [{"name": "call", "tool": "http.request", "params": {"url": f"{stage.webhook_base}/ok/{name}"}}],
    }
    assert (await stage.api.request("POST", "/api/v1/workflows", json=definition)).status_code == 201
    await _policy(
        stage.api,
        f"replay-{name}".replace("_", "-"),
        {
            "subjects": {"workflows": [name]},
            "target": {"kind": "tool", "tools": ["http.request"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    started = await stage.api.request("POST", f"/api/v1/workflows/{name}/execute", role="operator", json={})
    execution = started.json()["id"]
    await _approve_pending(stage.api, name)
    path = f"/api/v1/workflow-executions/{execution}"

    async def done() -> dict[str, Any] | None:
        found = (await stage.api.request("GET", path)).json()
        return found if found["status"] in ("completed", "failed") else None

    finished = await eventually(done, attempts=300)
    assert finished["status"] == "completed", finished
    return finished["temporal_workflow_id"], None


async def chain_action_approved(stage: Stage) -> Ref:
    """A rule's action that waited for its approval, then ran."""
    kind = unique_type("replay_approved")
    rule = await create_rule(stage.api, kind, [{"type": "call_webhook", "url": f"{stage.webhook_base}/ok/{kind}"}])
    subject = f"rule:{rule['workflow_name']}"
    await _policy(
        stage.api,
        f"replay-{kind}".replace("_", "-"),
        {
            "subjects": {"workflows": [subject]},
            "target": {"kind": "rule_action", "actions": ["call_webhook"]},
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    await create_entity(stage.api, kind, "Approved")
    await _approve_pending(stage.api, subject)
    [run] = await finished_executions(stage.api, rule["id"], 1)
    assert run["status"] == "completed", run
    return run["workflow_id"], None


async def forecast_watch(stage: Stage) -> Ref:
    run = await stage.api.request("POST", "/api/v1/analytics/forecast-watch", role="operator")
    assert run.status_code == 200, run.text
    return run.json()["workflow_id"], None


async def run_all(stage: Stage, llm: Any) -> dict[str, WorkflowHistory]:
    """Every scenario, concurrently; their histories by scenario name."""
    scenarios: dict[str, Callable[[], Awaitable[Ref]]] = {
        "process_success": lambda: process_success(stage),
        "process_approval_granted": lambda: process_approval_granted(stage),
        "process_rejected_to_terminal": lambda: process_rejected_to_terminal(stage),
        "process_rejected_then_approved": lambda: process_rejected_then_approved(stage),
        "process_timeout_escalated": lambda: process_timeout_escalated(stage),
        "process_timeout_default_path": lambda: process_timeout_default_path(stage),
        "chain_completed": lambda: chain_completed(stage),
        "chain_action_failed": lambda: chain_action_failed(stage),
        "chain_webhook_dead_letter": lambda: chain_webhook_dead_letter(stage),
        "webhook_redelivery": lambda: webhook_redelivery(stage),
        "event_with_several_rules": lambda: event_with_several_rules(stage),
        "scheduled_rule": lambda: scheduled_rule(stage),
        "session_completed": lambda: session_completed(stage),
        "session_revised_then_approved": lambda: session_revised_then_approved(stage),
        "session_budget_exceeded": lambda: session_budget_exceeded(stage),
        "session_invalid_output": lambda: session_invalid_output(stage, llm),
        "session_cancelled": lambda: session_cancelled(stage, llm),
        "session_approval_timed_out": lambda: session_approval_timed_out(stage),
        "session_continued_as_new": lambda: session_continued_as_new(stage),
        "work_item_lifecycle": lambda: work_item_lifecycle(stage),
        "work_signals": lambda: work_signals(stage),
        "step_execution": lambda: step_execution(stage),
        "step_control_flow": lambda: step_control_flow(stage),
        "process_paused_and_migrated": lambda: process_paused_and_migrated(stage),
        "instance_migration": lambda: instance_migration(stage),
        "step_paused": lambda: step_paused(stage),
        "session_paused": lambda: session_paused(stage),
        "session_forked": lambda: session_forked(stage),
        "session_acting": lambda: session_acting(stage, llm),
        "agent_acting": lambda: agent_acting(stage, llm),
        "policy_approval_transition": lambda: policy_approval_transition(stage),
        "step_tool_approved": lambda: step_tool_approved(stage),
        "chain_action_approved": lambda: chain_action_approved(stage),
        "forecast_watch": lambda: forecast_watch(stage),
    }
    refs = await asyncio.gather(*(run() for run in scenarios.values()))
    histories: dict[str, WorkflowHistory] = {}
    for name, (workflow_id, run_id) in zip(scenarios, refs, strict=True):
        handle = stage.client.get_workflow_handle(workflow_id, run_id=run_id)
        if run_id is None:
            with contextlib.suppress(WorkflowFailureError):  # cancelled and failed runs end that way
                await asyncio.wait_for(handle.result(), timeout=60)  # the whole history, to its end
        histories[name] = await handle.fetch_history()
    return histories
