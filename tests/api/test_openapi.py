"""The OpenAPI says what the API does: every operation documents the error statuses it can answer,
with the one error model, and real error answers conform to it (422 included: detail is a sentence,
problems the list)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.support.api import Api

JSON = {"content-type": "application/json"}
ERRORS = {"400", "401", "403", "404", "409", "413", "422", "429", "500", "503", "504"}


@pytest.fixture
async def spec(api: Api) -> dict[str, Any]:
    response = await api.request("GET", "/openapi.json", role=None)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _error_validator(spec: dict[str, Any]) -> Draft202012Validator:
    schema = {"$ref": "#/components/schemas/ErrorBody", "components": spec["components"]}
    return Draft202012Validator(schema)


async def test_every_operation_documents_its_error_answers(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # 422 is ours, not FastAPI's list
    api_operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        if path.startswith(("/api/", "/codec/"))
        for method, op in item.items()
    ]
    assert len(api_operations) >= 35
    for path, method, op in api_operations:
        documented = set(op["responses"])
        assert ERRORS <= documented, (method, path, ERRORS - documented)
        for status in ERRORS:
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorBody", (method, path, status)


@pytest.mark.parametrize(
    ("method", "path", "role", "kwargs", "status"),
    [
        ("GET", "/api/v1/workflow-template", None, {}, 401),
        ("POST", "/api/v1/workflow-template", "viewer", {"json": {}}, 403),
        ("GET", f"/api/v1/workflow-instance/{uuid.UUID(int=7)}", "viewer", {}, 404),
        ("POST", "/api/v1/workflow-instance", "operator", {"json": {"template_code": 5, "colour": "red"}}, 422),
        (
            "POST",
            "/api/v1/entities/thing",
            "operator",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("POST", "/api/v1/entities/thing", "operator", {"json": {"name": "x" * 70_000}}, 413),
    ],
)
async def test_error_answers_conform_to_the_documented_model(
    api: Api, spec: dict[str, Any], method: str, path: str, role: str | None, kwargs: dict[str, Any], status: int
) -> None:
    response = await api.request(method, path, role=role, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    errors = sorted(_error_validator(spec).iter_errors(body), key=str)
    assert errors == [], [e.message for e in errors]
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 422:
        assert body["problems"] and all(set(p) == {"field", "message"} for p in body["problems"])
    template = path.replace(str(uuid.UUID(int=7)), "{instance_id}").replace("/thing", "/{entity_type}")
    assert str(status) in spec["paths"][template][method.lower()]["responses"]


async def test_a_refused_transition_conforms_too(api: Api, spec: dict[str, Any]) -> None:
    instance = await api.start("HS_STD")
    refused = await api.transition(instance["instance_id"], 9)
    assert refused.status_code == 409
    assert list(_error_validator(spec).iter_errors(refused.json())) == []
    assert refused.json()["allowed_next_states"]


async def test_a_wrong_method_names_every_allowed_one(api: Api) -> None:
    response = await api.request("OPTIONS", "/api/v1/entities/thing", role="viewer")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
    response = await api.request("PATCH", f"/api/v1/workflow-automation/{uuid.UUID(int=1)}", role="viewer")
    assert response.status_code == 405 and response.headers["allow"] == "DELETE, GET, PUT"


async def test_a_body_that_is_not_json_is_a_documented_400(api: Api, spec: dict[str, Any]) -> None:
    response = await api.request(
        "PATCH", f"/api/v1/entities/thing/{uuid.UUID(int=3)}", role="operator", content=b"\xff\x00{", headers=JSON
    )
    assert response.status_code in (400, 422), response.text
    assert list(_error_validator(spec).iter_errors(response.json())) == []
    assert "400" in spec["paths"]["/api/v1/entities/{entity_type}/{entity_id}"]["patch"]["responses"]


async def test_the_document_states_the_rules_every_request_shares(spec: dict[str, Any]) -> None:
    """What check_storable enforces is written into the schemas requests use (see api/openapi.py)."""
    stored = spec["components"]["schemas"]["StoredValue"]
    assert {"type": "string", "pattern": "^[^\\u0000]*$"} in stored["anyOf"]
    entity = spec["components"]["schemas"]["EntityCreate"]["properties"]
    assert entity["name"]["pattern"] == "^[^\\u0000]*$"
    assert entity["fields"]["additionalProperties"] == {"$ref": "#/components/schemas/StoredValue"}
    rule = spec["components"]["schemas"]["RuleCreate"]["properties"]
    assert rule["execution_order"]["maximum"] == 10_000  # a model's own bound stays
    session = spec["components"]["schemas"]["SessionCreate"]["properties"]
    budget = next(part for part in session["token_budget"]["anyOf"] if part.get("type") == "integer")
    assert budget["maximum"] == 100_000_000
    gate = spec["components"]["schemas"]["ApprovalGate"]["properties"]["reject_to_state_id"]
    assert next(part for part in gate["anyOf"] if part.get("type") == "integer")["maximum"] == 100_000  # its own
    budget = spec["components"]["schemas"]["WorkflowConfig"]["properties"]["tokenBudget"]
    assert next(part for part in budget["anyOf"] if part.get("type") == "integer")["maximum"] == 2**63 - 1
    listing = spec["paths"]["/api/v1/workflow-instance"]["get"]["parameters"]
    template_code = next(p for p in listing if p["name"] == "template_code")
    assert template_code["schema"]["anyOf"][0]["pattern"] == "^[^\\u0000]*$"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        # NUL in a query parameter: refused before the database sees it, naming the parameter.
        ("GET", "/api/v1/workflow-instance?template_code=a%00b", {}, 422),
        # JSON types are taken as the document says: 0 is not false, "3" is not 3 …
        ("POST", "/api/v1/entities/thing", {"json": {"name": "n", "status": 5}}, 422),
        ("PUT", f"/api/v1/workflow-instance/{uuid.UUID(int=9)}/transition", {"json": {"to_state_id": "3"}}, 422),
        # … but 3.0 is an integer in JSON Schema, so it is taken (404: no such instance).
        ("PUT", f"/api/v1/workflow-instance/{uuid.UUID(int=9)}/transition", {"json": {"to_state_id": 3.0}}, 404),
        # A fractional number beyond ±9.2e18 is outside StoredValue.
        ("POST", "/api/v1/entities/thing", {"json": {"name": "n", "fields": {"x": 1e300}}}, 422),
    ],
)
async def test_requests_are_held_to_the_document(
    api: Api, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = await api.request(method, path, role="admin", **kwargs)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["problems"]


async def test_an_agent_is_replaced_by_the_name_in_its_path(api: Api) -> None:
    definition = {
        "agent_type": "checker",
        "capabilities": ["checks"],
        "system_prompt": "Check.",
        "output_schema": {"type": "object"},
    }
    created = await api.request("POST", "/api/v1/orchestrator/agents", json={"agent_name": "doc-checker", **definition})
    assert created.status_code == 201, created.text
    replaced = await api.request(
        "PUT", "/api/v1/orchestrator/agents/doc-checker", json={**definition, "system_prompt": "Check twice."}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["agent_name"] == "doc-checker" and replaced.json()["system_prompt"] == "Check twice."
    renamed = await api.request(
        "PUT", "/api/v1/orchestrator/agents/doc-checker", json={**definition, "agent_name": "x"}
    )
    assert renamed.status_code == 422  # the name is the path's; the body cannot carry another
    bad_path = await api.request("PUT", "/api/v1/orchestrator/agents/Not A Name", json=definition)
    assert bad_path.status_code == 422, bad_path.text
