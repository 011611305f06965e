"""What an outside review found in automation, now refused or bounded: data rendered as a template,
unbounded templates and conditions, dead-lettering that left executions running, webhook
destinations and URLs that reached other hosts, custom headers on cross-origin redirects, and
secrets stored in rules."""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.automation.conditions import ConditionError
from core.automation.evaluator import ConditionEvaluator
from core.effects.ssrf import AllowList, BlockedDestination, check_destination, is_public
from core.entities.tables import EntityEvent
from core.notifications.tables import Notification
from tests.support.api import Api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.servers import WebhookServer


def _rule_body(entity_type: str, actions: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "workflow_name": f"hardening {entity_type}",
        "trigger_entity_type": entity_type,
        "trigger_action_type": "create",
        "action_entity_type": entity_type,
        "actions": actions,
        **fields,
    }


# --------------------------------------------------------------------------- data is never a template


async def test_entity_values_are_sent_as_values_never_rendered(api: Api, webhook_server: WebhookServer) -> None:
    kind = unique_type("datavalue")
    parent = await create_entity(api, "customer", f"Parent {kind}", fields={"private_note": f"secret-{kind}"})
    rule = await create_rule(api, kind, [{"type": "call_webhook", "url": f"{_base(webhook_server)}/ok/{kind}"}])
    await create_entity(
        api,
        kind,
        "{{ customer.fields }}",
        parent_id=parent["id"],
        fields={"formula": "{{7*7}}", "letter": "use {{name}} in the letter", "leak": "{{ customer.fields }}"},
    )
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    [hit] = webhook_server.at(f"/ok/{kind}")
    event = json.loads(hit.body)  # the default body is the event JSON as it is
    fields = event["new_entity"]["fields"]
    assert fields == {"formula": "{{7*7}}", "letter": "use {{name}} in the letter", "leak": "{{ customer.fields }}"}
    assert event["new_entity"]["name"] == "{{ customer.fields }}"
    assert b'"formula":"49"' not in hit.body and f"secret-{kind}".encode() not in hit.body


async def test_an_execution_never_stays_running_when_dead_lettering_fails(
    api: Api, webhook_server: WebhookServer
) -> None:
    kind = unique_type("deadfail")
    # The admin's body names a value the entity does not have: the webhook cannot even be built, so there
    # is nothing to dead-letter. The execution must end failed with the reason, not stay 'running'.
    rule = await create_rule(
        api,
        kind,
        [{"type": "call_webhook", "url": f"{_base(webhook_server)}/fail/{kind}", "body": {"x": "{{ entity.nope }}"}}],
    )
    await create_entity(api, kind, "Unbuildable")
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "failed"
    assert "missing value" in run["reason"] and "nothing to dead-letter" in run["reason"]
    assert webhook_server.at(f"/fail/{kind}") == []


# --------------------------------------------------------------------------- bounded templates


@pytest.mark.parametrize(
    "template",
    [
        "{{ 10**(10**8) }}",
        "{{ 'a' * 10**8 }}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{{ 7*7 }}",
        "{{ entity.__class__ }}",
        "{{ lipsum(10**6) }}",
        "{% set x = entity %}{{ x }}",
        "{% for a in entity.fields.l %}{% for b in entity.fields.l %}.{% endfor %}{% endfor %}",
        "{{ entity.fields.l | join('" + "-" * 100 + "') }}",
    ],
)
async def test_unbounded_templates_are_refused_when_saved(api: Api, template: str) -> None:
    body = _rule_body(
        unique_type("tpl"),
        [{"type": "send_notification", "template": "custom", "recipients": ["ops"], "subject": template, "body": "x"}],
    )
    response = await api.request("POST", "/api/v1/workflow-automation", json=body)
    assert response.status_code == 422, response.text
    assert "actions[0]" in response.json()["problems"][0]["field"]


async def test_rendered_output_is_capped_and_nothing_is_stored(api: Api, engine: AsyncEngine) -> None:
    kind = unique_type("bigout")
    recipient = f"cap-{kind}"
    rule = await create_rule(
        api,
        kind,
        [
            {
                "type": "send_notification",
                "template": "custom",
                "recipients": [recipient],
                "subject": "big",
                "body": "{% for chunk in entity.fields.chunks %}{{ entity.fields.block }}{% endfor %}",
            }
        ],
    )
    await create_entity(api, kind, "Multiplier", fields={"chunks": list(range(200)), "block": "z" * 1000})
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "failed" and "renders more than" in run["reason"], run
    async with engine.connect() as conn:
        stored = await conn.execute(select(func.count()).where(Notification.recipient == recipient))
        assert stored.scalar_one() == 0


# --------------------------------------------------------------------------- bounded conditions


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("(" * 990 + "true" + ")" * 990, "nested deeper"),
        ("new.fields.l.all(x, new.fields.l.all(y, x == y))", "comprehension"),
        ("new.fields.l.exists(x, new.fields.l.map(y, y).size() > 0)", "comprehension"),
    ],
)
async def test_costly_conditions_are_refused_when_saved(api: Api, expression: str, words: str) -> None:
    body = _rule_body(
        unique_type("cel"),
        [{"type": "update_field", "field": "seen", "value": True}],
        trigger_conditions={"expression": expression},
    )
    response = await api.request("POST", "/api/v1/workflow-automation", json=body)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]


async def test_a_condition_that_fails_skips_only_its_rule(api: Api) -> None:
    kind = unique_type("condfail")
    broken = await create_rule(
        api,
        kind,
        [{"type": "update_field", "field": "broken_ran", "value": True}],
        trigger_conditions={"expression": "new.fields.absent > 1"},
        execution_order=1,
    )
    fine = await create_rule(
        api, kind, [{"type": "update_field", "field": "fine_ran", "value": True}], execution_order=2
    )
    await create_entity(api, kind, "Half", fields={"n": 1})
    [skipped] = await finished_executions(api, broken["id"], 1)
    assert skipped["status"] == "skipped" and "could not be evaluated" in skipped["reason"], skipped
    [ran] = await finished_executions(api, fine["id"], 1)
    assert ran["status"] == "completed"


async def test_the_evaluator_kills_a_runaway_evaluation_and_recovers() -> None:
    evaluator = ConditionEvaluator(timeout_seconds=0.5, max_input_bytes=8 * 1024 * 1024)
    try:
        await evaluator.start()
        assert await evaluator.evaluate_all([("new.n > 1", {"new": {"n": 2}})]) == [True]
        long_list = {"new": {"l": list(range(60_000))}}  # seconds of work for cel-python
        slow, after = await evaluator.evaluate_all(
            [("new.l.all(x, x >= 0) && new.l.exists(x, x < 0) == false", long_list), ("1 == 1", {})]
        )
        assert isinstance(slow, ConditionError) and "ran longer than 0.5s" in str(slow)
        assert after is True  # evaluated by the replacement process
        assert await evaluator.evaluate_all([("new.n > 1", {"new": {"n": 0}})]) == [False]
    finally:
        evaluator.close()


async def test_the_evaluator_refuses_oversized_events() -> None:
    evaluator = ConditionEvaluator(timeout_seconds=1.0, max_input_bytes=1024)
    try:
        [outcome] = await evaluator.evaluate_all([("true", {"new": {"blob": "x" * 5000}})])
        assert isinstance(outcome, ConditionError) and "over the limit of 1024" in str(outcome)
    finally:
        evaluator.close()


# --------------------------------------------------------------------------- outbound HTTP


@pytest.mark.parametrize("address", ["192.0.0.192", "192.0.0.1", "fec0::1", "64:ff9b::a00:1", "198.18.0.1"])
def test_special_purpose_addresses_are_not_public(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    with pytest.raises(BlockedDestination):
        check_destination("metadata.example", [ip], AllowList([]))


@pytest.mark.parametrize(
    "url",
    [
        "http://{{ entity.fields.u }}@example.com/hook",
        "http://example.com:{{ entity.fields.port }}/hook",
        "{{ entity.fields.scheme }}://example.com/hook",
        "http://example.com/hook#{{ entity.id }}",
    ],
)
async def test_only_the_path_and_query_of_a_webhook_url_may_be_templated(api: Api, url: str) -> None:
    body = _rule_body(unique_type("url"), [{"type": "call_webhook", "url": url}])
    response = await api.request("POST", "/api/v1/workflow-automation", json=body)
    assert response.status_code == 422, response.text


async def test_templated_path_values_are_percent_encoded(api: Api, webhook_server: WebhookServer) -> None:
    kind = unique_type("pathvalue")
    rule = await create_rule(
        api,
        kind,
        [
            {
                "type": "call_webhook",
                "url": f"{_base(webhook_server)}/ok/{kind}/{{{{ entity.fields.u }}}}?q={{{{ entity.fields.q }}}}",
            }
        ],
    )
    await create_entity(api, kind, "Sneaky", fields={"u": "127.0.0.1:9999/stolen#", "q": "a&admin=1"})
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    [hit] = [h for h in webhook_server.hits if h.path.startswith(f"/ok/{kind}/")]
    assert hit.path == f"/ok/{kind}/127.0.0.1%3A9999%2Fstolen%23?q=a%26admin%3D1"


async def test_cross_origin_redirects_carry_no_custom_headers_or_body(api: Api, webhook_server: WebhookServer) -> None:
    kind = unique_type("redirect")
    # Same address, other origin (another host name): the rule's headers and body stay behind.
    target = quote(f"http://localhost:{webhook_server.port}/ok/{kind}", safe="")
    rule = await create_rule(
        api,
        kind,
        [
            {
                "type": "call_webhook",
                "url": f"{_base(webhook_server)}/redirect/{target}",
                "headers": {"x-api-key": "for-the-first-origin-only"},
                "body": {"payload": "only for the first origin"},
            }
        ],
    )
    await create_entity(api, kind, "Redirected")
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    [first] = [h for h in webhook_server.hits if h.path.startswith("/redirect/") and kind in h.path]
    assert first.headers["x-api-key"] == "for-the-first-origin-only" and b"only for the first origin" in first.body
    [second] = webhook_server.at(f"/ok/{kind}")
    assert "x-api-key" not in second.headers and second.body == b"" and second.method == "GET"


async def test_header_secrets_are_named_not_stored(api: Api, webhook_server: WebhookServer) -> None:
    kind = unique_type("secretref")
    rule = await create_rule(
        api,
        kind,
        [
            {
                "type": "call_webhook",
                "url": f"{_base(webhook_server)}/ok/{kind}",
                "headers": {"authorization": "secret:crm_token"},
            }
        ],
    )
    assert "s3cr3t" not in json.dumps(rule)  # the rule holds the name only
    await create_entity(api, kind, "Authorised")
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    [hit] = webhook_server.at(f"/ok/{kind}")
    assert hit.headers["authorization"] == "Bearer s3cr3t-from-settings"
    unknown = await create_rule(
        api,
        unique_type("secretmissing"),
        [{"type": "call_webhook", "url": f"{_base(webhook_server)}/ok/x", "headers": {"x-token": "secret:nope"}}],
    )
    await create_entity(api, unknown["trigger_entity_type"], "Unknown secret")
    [failed] = await finished_executions(api, unknown["id"], 1)
    assert failed["status"] == "failed" and "TRELLIS_WEBHOOK_SECRETS does not define" in failed["reason"]


async def test_an_entity_value_rendered_into_a_header_never_names_a_secret(
    api: Api, webhook_server: WebhookServer
) -> None:
    """Attack run three: an entity field "secret:crm_token" rendered into a header template sent the real
    secret, and a dead letter kept it as a reference that redelivery resolved."""
    kind = unique_type("secretfield")
    rule = await create_rule(
        api,
        kind,
        [
            {
                "type": "call_webhook",
                "url": f"{_base(webhook_server)}/ok/{kind}",
                "headers": {"x-token": "{{ entity.token }}", "authorization": "secret:crm_token"},
            }
        ],
    )
    await create_entity(api, kind, "Injected", fields={"token": "secret:crm_token"})
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    [hit] = webhook_server.at(f"/ok/{kind}")
    assert hit.headers["x-token"] == "secret:crm_token"
    assert hit.headers["authorization"] == "Bearer s3cr3t-from-settings"
    # The same through a dead letter and its redelivery.
    dead = unique_type("secretdead")
    letter_rule = await create_rule(
        api,
        dead,
        [
            {
                "type": "call_webhook",
                "url": f"{_base(webhook_server)}/fail/{dead}",
                "headers": {"x-token": "{{ entity.token }}", "authorization": "secret:crm_token"},
            }
        ],
    )
    await create_entity(api, dead, "Injected again", fields={"token": "secret:crm_token"})
    await finished_executions(api, letter_rule["id"], 1)
    letters = (await api.request("GET", "/api/v1/webhook-dead-letters", params={"limit": 200})).json()["items"]
    [letter] = [item for item in letters if item["rule_id"] == letter_rule["id"]]
    response = await api.request("POST", f"/api/v1/webhook-dead-letters/{letter['id']}/redeliver", role="operator")
    assert response.status_code == 200, response.text
    hits = webhook_server.at(f"/fail/{dead}")
    assert len(hits) == 4  # three attempts and the redelivery
    assert {h.headers["x-token"] for h in hits} == {"secret:crm_token"}
    assert {h.headers["authorization"] for h in hits} == {"Bearer s3cr3t-from-settings"}


def _base(server: WebhookServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def test_header_values_and_url_credentials_are_shown_to_admins_only(api: Api) -> None:
    body = _rule_body(
        unique_type("redact"),
        [
            {
                "type": "call_webhook",
                "url": "https://robot:hunter2@hooks.example.com/in",
                "headers": {"authorization": "Bearer abc123", "x-crm": "secret:crm_token"},
            }
        ],
    )
    created = await api.request("POST", "/api/v1/workflow-automation", json=body)
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]
    as_admin = (await api.request("GET", f"/api/v1/workflow-automation/{rule_id}")).json()["actions"][0]
    assert as_admin["headers"]["authorization"] == "Bearer abc123" and "hunter2" in as_admin["url"]
    for role in ("viewer", "operator", "approver"):
        shown = await api.request("GET", f"/api/v1/workflow-automation/{rule_id}", role=role)
        action = shown.json()["actions"][0]
        assert action["headers"] == {"authorization": "***", "x-crm": "secret:crm_token"}
        assert action["url"] == "https://***@hooks.example.com/in"
        listed = await api.request("GET", "/api/v1/workflow-automation?limit=200", role=role)
        assert "abc123" not in listed.text and "hunter2" not in listed.text


async def test_an_outbox_row_that_does_not_read_as_an_event_holds_up_nothing(api: Api, engine: AsyncEngine) -> None:
    """Only the entity store writes the outbox, so a row that does not read as an entity event was written
    around it. It is skipped and reported, not retried for ever with every later event waiting behind it."""
    kind = unique_type("unreadable")
    bad = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(EntityEvent).values(
                id=bad,
                entity_id=uuid.uuid4(),
                entity_type=kind,
                event_kind="update",
                new_entity={"id": str(bad)},  # no type, name, status or version
                created_ts=datetime.now(UTC) - timedelta(days=1),  # first in line
            )
        )
    rule = await create_rule(api, kind, [{"type": "update_field", "field": "ran", "value": True}])
    await create_entity(api, kind, "After the bad row")
    [ran] = await finished_executions(api, rule["id"], 1)
    assert ran["status"] == "completed", ran
    async with engine.connect() as conn:
        dispatched = (await conn.execute(select(EntityEvent.dispatched_ts).where(EntityEvent.id == bad))).scalar_one()
    assert dispatched is not None
