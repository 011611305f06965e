"""Authorization per object: inboxes belong to their recipients, a session is cancelled by its starter
or an admin, and a running instance's entities take no direct status edits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from core.notifications.contracts import NotificationSpec
from core.notifications.store import insert_notifications
from tests.support.agents import case, start, until
from tests.support.api import Api, make_settings, open_api
from tests.support.servers import LlmServer


async def _notify(engine: AsyncEngine, recipient: str) -> None:
    async with engine.begin() as conn:
        await insert_notifications(
            conn,
            [NotificationSpec(recipient=recipient, template="t", subject="s", body="b")],
            dedupe_prefix=f"test:{uuid.uuid4()}",
            source="test",
            entity_id=None,
            ts=datetime.now(UTC),
        )


async def test_inboxes_belong_to_their_recipients(api: Api, engine: AsyncEngine) -> None:
    stranger = f"someone-{uuid.uuid4().hex[:6]}"
    await _notify(engine, stranger)
    await _notify(engine, "viewer-user")
    await _notify(engine, "approver")  # a role's inbox
    foreign = await api.request("GET", f"/api/v1/notifications?recipient={stranger}", role="viewer")
    assert foreign.status_code == 403 and "belongs to its recipient" in foreign.json()["detail"]
    own = await api.request("GET", "/api/v1/notifications?recipient=viewer-user", role="viewer")
    assert own.status_code == 200 and own.json()["total"] >= 1
    by_role = await api.request("GET", "/api/v1/notifications?recipient=approver", role="approver")
    assert by_role.status_code == 200 and by_role.json()["total"] >= 1
    admin = await api.request("GET", f"/api/v1/notifications?recipient={stranger}", role="admin")
    [note] = admin.json()["items"]
    marked = await api.request("POST", f"/api/v1/notifications/{note['id']}/read", role="viewer")
    assert marked.status_code == 403
    unread = await api.request("GET", f"/api/v1/notifications?recipient={stranger}&unread=true", role="admin")
    assert unread.json()["total"] == 1  # the refused mark changed nothing
    assert (await api.request("POST", f"/api/v1/notifications/{note['id']}/read", role="admin")).status_code == 200
    missing = await api.request("POST", f"/api/v1/notifications/{uuid.uuid4()}/read", role="viewer")
    assert missing.status_code == 404


async def test_only_the_starter_or_an_admin_cancels_a_session(api: Api, llm_server: LlmServer) -> None:
    c = case()
    llm_server.script(c, "planner", [("slow", 2.0, None)])
    started = await start(api, c, agents=["planner", "reporter"])  # started by operator-user
    assert started["created_by"] == "operator-user"
    other = await api.request(
        "POST",
        f"/api/v1/orchestrator/session/{started['session_id']}/cancel",
        role="approver",  # not the starter; approvers may not cancel at all
    )
    assert other.status_code == 403
    by_admin = await api.request("POST", f"/api/v1/orchestrator/session/{started['session_id']}/cancel")
    assert by_admin.status_code == 200
    assert (await until(api, started["session_id"]))["session_status"] == "cancelled"


async def test_a_second_operator_cannot_cancel_someone_elses_session(
    api: Api, llm_server: LlmServer, postgres_url: str, temporal_address: str, task_queue: str, worker: None
) -> None:
    settings = make_settings(postgres_url, temporal_address, task_queue)
    settings.api_keys += ",second-operator-token-0000009:operator:second-operator"
    lifespan, client = await open_api(settings)
    try:
        c = case()
        llm_server.script(c, "planner", [("slow", 2.0, None)])
        started = await start(api, c, agents=["planner", "reporter"])
        refused = await client.post(
            f"/api/v1/orchestrator/session/{started['session_id']}/cancel",
            headers={"Authorization": "Bearer second-operator-token-0000009"},
        )
        assert refused.status_code == 403 and "only its starter or an admin" in refused.json()["detail"]
        own = await api.request("POST", f"/api/v1/orchestrator/session/{started['session_id']}/cancel", role="operator")
        assert own.status_code == 200
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_a_running_instances_entities_refuse_direct_status_edits(api: Api) -> None:
    instance = await api.start("HS_STD", name="Managed Customer")
    [customer] = instance["created_entities"]
    path = f"/api/v1/entities/{customer['entity']}/{customer['id']}"
    refused = await api.request("PATCH", path, role="operator", json={"status": "Won"})
    assert refused.status_code == 409 and refused.json()["error"] == "managed_by_instance"
    assert instance["instance_id"] in refused.json()["detail"]
    fields_only = await api.request("PATCH", path, role="operator", json={"fields": {"phone": "555"}})
    assert fields_only.status_code == 200  # fields stay editable; the status is the instance's
    for state in (1, 2, 3, 4, 6, 7, 8, 9):
        assert (await api.transition(instance["instance_id"], state)).status_code == 200
    finished = await api.request("PATCH", path, role="operator", json={"status": "Archived"})
    assert finished.status_code == 200 and finished.json()["status"] == "Archived"
