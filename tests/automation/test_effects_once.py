"""Rule actions and step tools apply the same effect bodies (core/effects) under one ledger: the
behaviours the twins had drifted on (issue 21) now hold for both.

The run_script tests hold the chain between two actions: action 0 calls the webhook receiver's
``/hold/<tag>`` path, which answers only when the test releases it, so the test can change or delete
the entity at a known point before run_script (action 1) starts.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.automation.tables import ActionLog
from core.entities import store as entities
from core.entities.tables import Entity
from tests.support.api import Api, eventually
from tests.support.automation import create_entity, create_rule, finished_executions, get_entity, unique_type
from tests.support.servers import SmtpServer, WebhookServer
from tests.support.steps import run, steps_by_name

LINE_ITEMS_BEFORE = [{"quantity": 1, "unit_price": 10}]
LINE_ITEMS_AFTER = [{"quantity": 3, "unit_price": 100}]


async def held_script_rule(api: Api, webhook_server: WebhookServer, tag: str) -> tuple[str, dict[str, Any]]:
    kind = unique_type("estimate")
    rule = await create_rule(
        api,
        kind,
        [
            {"type": "call_webhook", "url": webhook_server.url(f"/hold/{tag}")},
            {"type": "run_script", "script_id": "sum_line_items"},
        ],
    )
    return kind, rule


async def held(webhook_server: WebhookServer, tag: str) -> None:
    """Wait until the chain is inside action 0 (its request reached the receiver)."""

    async def reached() -> bool:
        return bool(webhook_server.at(f"/hold/{tag}"))

    await eventually(reached)


async def logged_actions(engine: AsyncEngine, rule_id: str) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ActionLog.action_index)
            .where(ActionLog.rule_id == uuid.UUID(rule_id))
            .order_by(ActionLog.action_index)
        )
        return [r[0] for r in rows]


async def test_run_script_on_a_soft_deleted_entity_fails_the_action_and_records_nothing(
    api: Api, engine: AsyncEngine, webhook_server: WebhookServer
) -> None:
    tag = uuid.uuid4().hex
    kind, rule = await held_script_rule(api, webhook_server, tag)
    estimate = await create_entity(api, kind, "E-deleted", fields={"line_items": LINE_ITEMS_BEFORE})
    await held(webhook_server, tag)
    deleted = await api.request("DELETE", f"/api/v1/entities/{kind}/{estimate['id']}", role="operator")
    assert deleted.status_code == 200, deleted.text
    webhook_server.release(tag)

    [run_] = await finished_executions(api, rule["id"], 1)
    assert run_["status"] == "failed"
    assert "run_script" in run_["reason"] and "deleted" in run_["reason"], run_["reason"]
    assert await logged_actions(engine, rule["id"]) == [0]  # the webhook's record only: no run_script row
    async with engine.connect() as conn:
        stored = await entities.load(conn, uuid.UUID(estimate["id"]))
    assert stored is not None and stored["deleted"] and "total" not in stored["fields"]


async def test_a_field_changed_while_run_script_waits_is_not_lost(
    api: Api, engine: AsyncEngine, webhook_server: WebhookServer
) -> None:
    """Someone changes the line items (holding the row) as run_script begins: the script waits for the
    change and computes from it. Reading without the lock, it computed the total of the old items and
    wrote it over the new ones."""
    tag = uuid.uuid4().hex
    kind, rule = await held_script_rule(api, webhook_server, tag)
    estimate = await create_entity(api, kind, "E-concurrent", fields={"line_items": LINE_ITEMS_BEFORE})
    entity_id = uuid.UUID(estimate["id"])
    await held(webhook_server, tag)

    async with engine.connect() as other:
        transaction = await other.begin()
        await entities.load(other, entity_id, lock=True)
        # Another writer's change, in flight: its row lock is held until the commit below.
        change = update(Entity).where(Entity.id == entity_id).values(fields={"line_items": LINE_ITEMS_AFTER})
        await other.execute(change)
        webhook_server.release(tag)

        async def run_script_waits_for_the_row() -> bool | None:
            async with engine.connect() as conn:
                waiting = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query ILIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()"
                        )
                    )
                ).scalar_one()
            return True if waiting else None

        await eventually(run_script_waits_for_the_row)
        await transaction.commit()

    [run_] = await finished_executions(api, rule["id"], 1)
    assert run_["status"] == "completed", run_
    fields = (await get_entity(api, kind, estimate["id"]))["fields"]
    assert fields["line_items"] == LINE_ITEMS_AFTER
    assert fields["total"] == 300.0  # computed from the change it waited for, not from the items before it


async def test_smtp_answers_are_read_alike_by_rules_and_steps(api: Api, smtp_server: SmtpServer) -> None:
    """A permanent 554 fails a rule's send_email and a step's email.send on the first attempt; a
    transient 451 is tried again by both, and the second attempt delivers."""
    mailbox = smtp_server.mailbox
    token = uuid.uuid4().hex[:8]

    # Rules
    kind = unique_type("mail")

    def email(to: str) -> list[dict[str, Any]]:
        return [{"type": "send_email", "to": to, "template": "x", "subject": "s", "body": "b"}]

    refused_rule = await create_rule(api, kind, email(f"reject-rule-{token}@example.com"))
    busy_kind = unique_type("mail")
    busy_rule = await create_rule(api, busy_kind, email(f"later-rule-{token}@example.com"))
    await create_entity(api, kind, "M-1")
    await create_entity(api, busy_kind, "M-2")
    [refused] = await finished_executions(api, refused_rule["id"], 1)
    [busy] = await finished_executions(api, busy_rule["id"], 1)
    assert refused["status"] == "failed" and "554" in refused["reason"], refused
    assert mailbox.attempts[f"reject-rule-{token}@example.com"] == 1
    assert busy["status"] == "completed", busy
    assert mailbox.attempts[f"later-rule-{token}@example.com"] == 2

    # Steps, with retry settings that would try a retryable failure three times
    retry = {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 200}

    def mail(to: str) -> dict[str, Any]:
        return {"name": "mail", "tool": "email.send", "params": {"to": to, "subject": "s", "body": "b"}, "retry": retry}

    failed = await run(api, [mail(f"reject-step-{token}@example.com")])
    delivered = await run(api, [mail(f"later-step-{token}@example.com")])
    step = steps_by_name(failed)["mail"]
    assert failed["status"] == "failed" and step["retry_count"] == 0 and "554" in step["error"], failed
    assert mailbox.attempts[f"reject-step-{token}@example.com"] == 1
    assert delivered["status"] == "completed", delivered
    assert steps_by_name(delivered)["mail"]["retry_count"] == 1
    assert mailbox.attempts[f"later-step-{token}@example.com"] == 2
