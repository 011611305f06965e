"""Entity writes are bounded: caps on fields and bytes (named in the answer), one snapshot per change,
non-finite numbers refused on every way in, and database errors that no retry can fix never answered
as 'retry later'."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.platform.database import is_data_error, is_too_large, is_unavailable, make_engine
from tests.support.api import Api
from tests.support.automation import create_entity, create_rule, finished_executions, outbox, unique_type


async def test_too_many_fields_is_refused_naming_the_cap(api: Api) -> None:
    kind = unique_type("wide")
    entity = await create_entity(api, kind, "Wide")
    response = await api.request(
        "PATCH",
        f"/api/v1/entities/{kind}/{entity['id']}",
        role="operator",
        json={"fields": {f"k{i}": i for i in range(1000)}},
    )
    assert response.status_code == 413 and "TRELLIS_ENTITY_MAX_FIELDS" in response.json()["detail"]
    created = await api.request(
        "POST",
        f"/api/v1/entities/{kind}",
        role="operator",
        json={"name": "x", "fields": {f"k{i}": 1 for i in range(501)}},
    )
    assert created.status_code == 413 and "at most 500 fields" in created.json()["detail"]
    unchanged = await api.request("GET", f"/api/v1/entities/{kind}/{entity['id']}", role="viewer")
    assert unchanged.json()["version"] == 1


async def test_growing_past_the_byte_cap_is_refused(api: Api) -> None:
    kind = unique_type("heavy")
    entity = await create_entity(api, kind, "Heavy")
    answers = []
    for part in range(6):  # each request is under the body limit; together they pass 256 KiB
        response = await api.request(
            "PATCH",
            f"/api/v1/entities/{kind}/{entity['id']}",
            role="operator",
            json={"fields": {f"part{part}": "x" * 60_000}},
        )
        answers.append(response.status_code)
        if response.status_code != 200:
            assert response.status_code == 413 and "TRELLIS_ENTITY_MAX_BYTES" in response.json()["detail"]
    assert answers[:4] == [200, 200, 200, 200] and 413 in answers


async def test_one_snapshot_per_change_and_field_rules_still_see_the_entity(api: Api, engine: AsyncEngine) -> None:
    kind = unique_type("snap")
    rule = await create_rule(
        api,
        kind,
        [{"type": "update_field", "field": "noticed", "value": True}],
        trigger_action_type="field_change",
        trigger_conditions={"field": "f7", "expression": 'new.fields.f7 == "after" && old.fields.f7 == "before"'},
    )
    entity = await create_entity(api, kind, "Many", fields={f"f{i}": "before" for i in range(100)})
    await api.request(
        "PATCH",
        f"/api/v1/entities/{kind}/{entity['id']}",
        role="operator",
        json={"fields": {f"f{i}": "after" for i in range(100)}},
    )
    [run] = await finished_executions(api, rule["id"], 1)
    assert run["status"] == "completed", run
    rows = [r for r in await outbox(engine, entity["id"]) if r["new_entity"] is None or r["event_kind"] != "create"]
    update = next(r for r in rows if r["event_kind"] == "update" and r["new_entity"]["fields"]["f0"] == "after")
    field_rows = [r for r in rows if r["event_kind"] == "field_change" and r["snapshot_event_id"] == update["id"]]
    assert len(field_rows) == 100
    assert all(r["old_entity"] is None and r["new_entity"] is None for r in field_rows)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
async def test_non_finite_numbers_are_refused_on_every_way_in(api: Api, number: bytes) -> None:
    headers = {"content-type": "application/json"}
    instance = await api.request(
        "POST",
        "/api/v1/workflow-instance",
        role="operator",
        content=b'{"template_code": "HS_STD", "entity": {"name": "x", "fields": {"a": ' + number + b"}}}",
        headers=headers,
    )
    assert instance.status_code == 422 and "finite" in instance.json()["detail"], instance.text
    entity = await api.request(
        "POST",
        f"/api/v1/entities/{unique_type('nan')}",
        role="operator",
        content=b'{"name": "x", "fields": {"a": ' + number + b"}}",
        headers=headers,
    )
    assert entity.status_code == 422 and "finite" in entity.json()["detail"], entity.text


async def test_database_errors_are_told_apart(engine: AsyncEngine, postgres_url: str) -> None:
    """Real errors from the real database: only an unreachable database is worth retrying."""
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError) as too_large:
            await conn.execute(text("SELECT array_fill(1, ARRAY[300000000])"))
    assert is_too_large(too_large.value) and not is_unavailable(too_large.value)
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError) as bad_value:
            await conn.execute(text("SELECT 'abc'::int"))
    assert is_data_error(bad_value.value) and not is_unavailable(bad_value.value)
    unreachable = make_engine(postgres_url.replace("@/postgres?host=", f"@/missing_{uuid.uuid4().hex[:6]}?host="))
    try:
        with pytest.raises(DBAPIError) as missing:
            async with unreachable.connect():
                pass
        assert isinstance(missing.value.orig, psycopg.OperationalError) and is_unavailable(missing.value)
    finally:
        await unreachable.dispose()
