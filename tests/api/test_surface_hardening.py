"""What the third attack run found on the API's surface, now closed: CORS answering every path (so a page
on the Temporal UI's origin could read the console), a key named like a role taking that role's work,
signed events that crashed the route or told a prober which sources exist, health answers telling the
driver's error text, and security headers missing from pages and JSON."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from core.platform.settings import Settings, parse_api_keys
from tests.support import events
from tests.support.api import Api, make_settings, open_api

UI = "http://127.0.0.1:8233"


async def test_cors_answers_the_codec_only(api: Api) -> None:
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    codec = await api.request("OPTIONS", "/codec/decode", role=None, headers=preflight)
    assert codec.status_code == 200 and codec.headers["access-control-allow-origin"] == UI
    for path in ("/ui/inbox", "/ui/login", "/api/v1/inbox", "/api/v1/workflow-instance"):
        answer = await api.request("GET", path, role="viewer", headers={"Origin": UI})
        assert "access-control-allow-origin" not in answer.headers, path
        assert "access-control-allow-credentials" not in answer.headers, path
        refused = await api.request("OPTIONS", path, role=None, headers=preflight)
        assert "access-control-allow-origin" not in refused.headers, path


async def test_the_codec_origin_follows_the_temporal_ui_port(postgres_url: str, temporal_address: str) -> None:
    settings = make_settings(postgres_url, temporal_address, "unused", temporal_ui_port=18233)
    assert settings.codec_origins() == ["http://127.0.0.1:18233", "http://localhost:18233"]
    lifespan, client = await open_api(settings)
    try:
        preflight = {"Origin": "http://127.0.0.1:18233", "Access-Control-Request-Method": "POST"}
        moved = await client.options("/codec/decode", headers=preflight)
        assert moved.headers.get("access-control-allow-origin") == "http://127.0.0.1:18233"
        old = await client.options("/codec/decode", headers={**preflight, "Origin": UI})
        assert "access-control-allow-origin" not in old.headers
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.mark.parametrize("name", ["admin", "operator", "approver", "viewer"])
def test_a_key_named_like_a_role_is_refused_when_the_settings_load(name: str) -> None:
    with pytest.raises(ValueError, match="reserved for roles"):
        parse_api_keys(f"some-long-token-0000001:viewer:{name}")
    with pytest.raises(ValidationError, match="reserved for roles"):
        Settings(api_keys=f"some-long-token-0000001:viewer:{name}")
    assert parse_api_keys(f"some-long-token-0000001:viewer:{name}-user")[0].name == f"{name}-user"


async def test_a_deeply_nested_signed_event_is_a_400_with_the_error_body(api: Api) -> None:
    text = "[" * 5000 + "]" * 5000
    webhook_id, when = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(events.SECRET).sign(webhook_id, when, text),
        "content-type": "application/json",
    }
    answer = await api.request("POST", f"/api/v1/events/{events.SOURCE}", role=None, content=text, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_body", answer.text


async def test_unsigned_posts_answer_alike_for_known_and_unknown_sources(api: Api) -> None:
    body = json.dumps({"key": "k"}).encode()
    known = await api.request("POST", f"/api/v1/events/{events.SOURCE}", role=None, content=body)
    unknown = await api.request("POST", "/api/v1/events/nosuchsource", role=None, content=body)
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    forged = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    known = await api.request("POST", f"/api/v1/events/{events.SOURCE}", role=None, content=body, headers=forged)
    unknown = await api.request("POST", "/api/v1/events/nosuchsource", role=None, content=body, headers=forged)
    assert known.status_code == unknown.status_code == 401 and known.json() == unknown.json()


async def test_an_idempotency_key_reused_with_another_request_is_refused(api: Api) -> None:
    """Before, the second request silently got the first result and its own action was dropped."""
    key = f"reuse-{uuid.uuid4()}"
    body = {"template_code": "HS_STD", "entity": {"name": "Key Co"}}
    headers = {"Idempotency-Key": key}
    first = await api.request("POST", "/api/v1/workflow-instance", role="operator", json=body, headers=headers)
    assert first.status_code == 201, first.text
    # The same request again, spelled differently (JSON compared by value): the first answer.
    spaced = json.dumps(body, indent=2).encode()
    again = await api.request(
        "POST",
        "/api/v1/workflow-instance",
        role="operator",
        content=spaced,
        headers={**headers, "content-type": "application/json"},
    )
    assert again.status_code == 201 and again.json()["instance_id"] == first.json()["instance_id"]
    other = {"template_code": "HS_STD", "entity": {"name": "Another Co"}}
    refused = await api.request("POST", "/api/v1/workflow-instance", role="operator", json=other, headers=headers)
    assert refused.status_code == 422 and refused.json()["error"] == "idempotency_key_reused", refused.text
    assert "POST /api/v1/workflow-instance" in refused.json()["detail"]
    # The same key on another door (a work item's change) is another request too.
    elsewhere = await api.request(
        "POST",
        f"/api/v1/orchestrator/executions/{uuid.uuid4()}/skip",
        role="operator",
        json={"reason": "x"},
        headers=headers,
    )
    assert elsewhere.status_code == 422 and elsewhere.json()["error"] == "idempotency_key_reused"
    # Keys are the caller's own: another principal may use the same key for its own request.
    theirs = await api.request("POST", "/api/v1/workflow-instance", role="admin", json=other, headers=headers)
    assert theirs.status_code == 201 and theirs.json()["instance_id"] != first.json()["instance_id"]


async def test_one_ownership_rule_for_reading_queues_and_acting_on_runs(api: Api) -> None:
    # The demo sequence's status is read by assignee like the queue: one's own, another's for admins.
    mine = await api.request("GET", "/api/v1/orchestrator/demo/status", role="viewer")
    assert mine.status_code == 200
    theirs = await api.request(
        "GET", "/api/v1/orchestrator/demo/status", role="viewer", params={"assignee": "operator-user"}
    )
    queue = await api.request("GET", "/api/v1/orchestrator/queue", role="viewer", params={"assignee": "operator-user"})
    assert theirs.status_code == queue.status_code == 403
    assert (
        await api.request("GET", "/api/v1/orchestrator/demo/status", role="admin", params={"assignee": "operator-user"})
    ).status_code == 200


async def test_only_its_starter_or_an_admin_cancels_or_retries_a_step_execution(api: Api) -> None:
    from tests.support.steps import create, finished, unique_name, workflow

    name = unique_name("owned")
    await create(api, workflow(name, [{"name": "wait", "human_task": {"assignee": "nobody-in-particular"}}]))
    started = await api.request("POST", f"/api/v1/workflows/{name}/execute", role="admin", json={})
    assert started.status_code == 202, started.text
    execution = started.json()["id"]
    refused = await api.request("POST", f"/api/v1/workflow-executions/{execution}/cancel", role="operator")
    assert refused.status_code == 403 and "only its starter or an admin" in refused.json()["detail"], refused.text
    cancelled = await api.request("POST", f"/api/v1/workflow-executions/{execution}/cancel", role="admin")
    assert cancelled.status_code == 202, cancelled.text
    assert (await finished(api, execution))["status"] == "cancelled"
    retry = await api.request(
        "POST", f"/api/v1/workflow-executions/{execution}/retry", role="operator", json={"from_step": "wait"}
    )
    assert retry.status_code == 403 and "only its starter or an admin" in retry.json()["detail"]


async def test_after_a_delete_the_answers_are_the_documented_ones(api: Api) -> None:
    """A soft DELETE keeps a rule readable (documented on its GET); a purge removes it and its executions'
    listing answers 404, where it used to answer an empty page for a rule that no longer exists."""
    body = {
        "workflow_name": "deleted later",
        "trigger_entity_type": "deleted_kind",
        "trigger_action_type": "create",
        "action_entity_type": "deleted_kind",
        "actions": [{"type": "send_notification", "template": "task_completed", "recipients": ["x"]}],
    }
    created = await api.request("POST", "/api/v1/workflow-automation", json=body)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (await api.request("DELETE", f"/api/v1/workflow-automation/{rule['id']}")).status_code == 200
    kept = await api.request("GET", f"/api/v1/workflow-automation/{rule['id']}", role="viewer")
    assert kept.status_code == 200 and kept.json()["active_flag"] is False
    assert (await api.request("GET", f"/api/v1/workflow-automation/{rule['id']}/executions")).status_code == 200
    purged = await api.request("DELETE", f"/api/v1/workflow-automation/{rule['id']}", params={"purge": "true"})
    assert purged.status_code == 200
    assert (await api.request("GET", f"/api/v1/workflow-automation/{rule['id']}")).status_code == 404
    assert (await api.request("GET", f"/api/v1/workflow-automation/{rule['id']}/executions")).status_code == 404
    spec = (await api.request("GET", "/openapi.json", role=None)).json()
    assert "still returned" in spec["paths"]["/api/v1/workflow-automation/{rule_id}"]["get"]["description"]
