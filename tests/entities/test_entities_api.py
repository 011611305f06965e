"""The entity API and the events each change commits with it (the outbox)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import Api
from tests.support.automation import create_entity, outbox, patch_entity, unique_type


async def test_entity_lifecycle_emits_every_event_kind(api: Api, engine: AsyncEngine) -> None:
    kind = unique_type("task")
    task = await create_entity(api, kind, "Paint fence", status="Open", fields={"priority": "low", "hours": 3})
    assert task["version"] == 1 and task["fields"] == {"priority": "low", "hours": 3}

    updated = await patch_entity(
        api, kind, task["id"], status="Done", fields={"priority": "high", "crew": "B"}, unset_fields=["hours"]
    )
    assert updated["version"] == 2 and updated["status"] == "Done"
    assert updated["fields"] == {"priority": "high", "crew": "B"}
    unchanged = await patch_entity(api, kind, task["id"], fields={"priority": "high"})
    assert unchanged["version"] == 2  # nothing changed: no new version, no events

    deleted = await api.request("DELETE", f"/api/v1/entities/{kind}/{task['id']}", role="operator")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert (await api.request("GET", f"/api/v1/entities/{kind}/{task['id']}", role="viewer")).status_code == 404
    listing = await api.request("GET", f"/api/v1/entities/{kind}?include_deleted=true", role="viewer")
    assert listing.json()["total"] == 1

    events = [
        (e["event_kind"], e["field_name"], e["old_value"], e["new_value"]) for e in await outbox(engine, task["id"])
    ]
    assert events == [
        ("create", None, None, None),
        ("field_change", "crew", None, "B"),
        ("field_change", "hours", 3, None),
        ("field_change", "priority", "low", "high"),
        ("status_change", "status", "Open", "Done"),
        ("update", None, None, None),
        ("delete", None, None, None),
    ]
    rows = await outbox(engine, task["id"])
    update_row = next(r for r in rows if r["event_kind"] == "update")
    assert update_row["old_entity"]["status"] == "Open" and update_row["new_entity"]["status"] == "Done"
    assert {r["actor"] for r in rows} == {"operator-user"}


async def test_entity_validation_and_conflicts(api: Api) -> None:
    kind = unique_type("quote")
    quote = await create_entity(api, kind, "Q-1")
    stale = await api.request(
        "PATCH",
        f"/api/v1/entities/{kind}/{quote['id']}",
        role="operator",
        json={"status": "Sent", "expected_version": 7},
    )
    assert stale.status_code == 409 and stale.json()["current_version"] == 1
    for path, body, status in [
        (f"/api/v1/entities/{kind}", {"fields": {}}, 422),
        (f"/api/v1/entities/{kind}", {"name": "x", "colour": "red"}, 422),
        ("/api/v1/entities/Bad-Type", {"name": "x"}, 422),
        (f"/api/v1/entities/{kind}", {"name": "x", "parent_id": "5b1f0c1e-0000-4000-8000-000000000000"}, 422),
    ]:
        response = await api.request("POST", path, role="operator", json=body)
        assert response.status_code == status, (path, body, response.text)
    assert (await api.request("POST", f"/api/v1/entities/{kind}", role="viewer", json={"name": "x"})).status_code == 403
    other = await api.request("GET", f"/api/v1/entities/{unique_type('other')}/{quote['id']}", role="viewer")
    assert other.status_code == 404


async def test_list_filters(api: Api) -> None:
    kind = unique_type("lead")
    for name, status in (("Alpha Roofing", "New"), ("Beta Plumbing", "New"), ("Gamma 100%", "Won")):
        await create_entity(api, kind, name, status=status)
    new = await api.request("GET", f"/api/v1/entities/{kind}?status=New", role="viewer")
    assert new.json()["total"] == 2
    named = await api.request("GET", f"/api/v1/entities/{kind}?name=100%25", role="viewer")
    assert [e["name"] for e in named.json()["items"]] == ["Gamma 100%"]
    page = await api.request("GET", f"/api/v1/entities/{kind}?limit=1&offset=1", role="viewer")
    assert page.json()["total"] == 3 and len(page.json()["items"]) == 1
