"""Hostile input gets a 4xx, never a 500 or a stuck instance: NUL characters (Postgres rejects them in
text and JSONB), integers beyond Postgres's range, and deeply nested JSON."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.api import Api

BIG = 10**20


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/v1/workflow-instance", {"json": {"template_code": "HS_STD", "entity": {"name": "a\u0000b"}}}),
        (
            "POST",
            "/api/v1/workflow-instance",
            {"json": {"template_code": "HS_STD", "entity": {"name": "ok", "fields": {"k": ["x\u0000"]}}}},
        ),
        (
            "POST",
            "/api/v1/workflow-instance",
            {"json": {"template_code": "HS_STD", "entity": {"name": "ok", "fields": {"k\u0000": 1}}}},
        ),
        ("POST", "/api/v1/workflow-instance", {"json": {"template_code": "HS_STD", "template_version": BIG}}),
        (
            "POST",
            "/api/v1/workflow-instance",
            {"json": {"template_code": "HS_STD", "entity": {"name": "ok", "fields": {"n": BIG**20}}}},
        ),
        ("GET", f"/api/v1/workflow-instance?state_id={BIG}", {}),
        ("GET", f"/api/v1/workflow-instance?offset={BIG}", {}),
        ("GET", f"/api/v1/workflow-template/HS_STD?version={BIG}", {}),
        ("GET", "/api/v1/workflow-template?code=A%00B", {}),
        ("GET", "/api/v1/workflow-instance?template_code=A%00B", {}),
        (
            "POST",
            "/api/v1/workflow-instance",
            {
                "content": b'{"template_code": "HS_STD", "entity": {"name": "x", "fields": {"a": '
                + b"[" * 5000
                + b"]" * 5000
                + b"}}}",
                "headers": {"content-type": "application/json"},
            },
        ),
    ],
)
async def test_hostile_input_is_refused_with_4xx(api: Api, method: str, path: str, kwargs: dict[str, Any]) -> None:
    response = await api.request(method, path, role="admin", **kwargs)
    # 400 only for a body the JSON parser itself gives up on (nesting beyond its recursion limit).
    assert response.status_code == (400 if b"[[[[" in kwargs.get("content", b"") else 422), response.text
    assert response.json()["detail"]


async def test_nul_in_transition_fields_and_comment_is_refused(api: Api) -> None:
    instance = await api.start("HS_STD")
    for body in ({"comment": "a\u0000"}, {"fields": {"note": "b\u0000"}}):
        response = await api.transition(instance["instance_id"], 1, **body)
        assert response.status_code == 422, response.text
    assert (await api.transition(instance["instance_id"], 1)).status_code == 200


async def test_template_with_nul_or_huge_numbers_is_refused(api: Api) -> None:
    states = [{"id": 0, "name": "a\u0000", "parent_ids": [], "child_ids": [], "terminal_flag": True, "success": True}]
    body = {
        "code": f"NUL_{uuid.uuid4().hex[:6].upper()}",
        "name": "n",
        "industry_sector": "s",
        "workflow_graph": {"states": states},
    }
    assert (await api.request("POST", "/api/v1/workflow-template", json=body)).status_code == 422
    states[0]["name"] = "fine"
    body["avg_duration_days"] = BIG
    assert (await api.request("POST", "/api/v1/workflow-template", json=body)).status_code == 422
