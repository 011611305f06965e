"""The OpenAPI document says what the API accepts, including the rules every request shares.

Pydantic describes each model's own constraints. What it cannot see is ``check_storable``, which every
request body passes, and the parameter check of ``api.errors.StorableParameters``: no NUL characters in
any text, numbers within 64-bit range, and free-form JSON (entity fields, contexts, action values) made
of storable values. ``describe_storable`` writes those rules into every schema a request uses, so a
client (or a fuzzer) generating from the document sends only what the API takes, and what the document
refuses the API refuses too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from core.platform.contracts import MAX_JSON_DEPTH, MAX_JSON_FLOAT, MAX_JSON_INT

NO_NUL = "^[^\\u0000]*$"
STORED_VALUE = "StoredValue"
_REF = f"#/components/schemas/{STORED_VALUE}"
_INTEGER_BOUNDS: dict[str, float] = {"minimum": -MAX_JSON_INT, "maximum": MAX_JSON_INT}
_NUMBER_BOUNDS: dict[str, float] = {"minimum": -MAX_JSON_FLOAT, "maximum": MAX_JSON_FLOAT}
# Keys that only describe a schema; a schema made of nothing else accepts any JSON value.
_ANNOTATIONS = {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}

STORED_VALUE_SCHEMA: dict[str, Any] = {
    "title": STORED_VALUE,
    "description": (
        "Any JSON value Trellis can store: text without NUL characters, whole numbers within 64-bit range, "
        f"other numbers within ±{MAX_JSON_FLOAT:g}, and objects (whose keys follow the text rule) and "
        f"arrays of such values, nested at most {MAX_JSON_DEPTH} levels deep."
    ),
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "integer", **_INTEGER_BOUNDS},
        {"type": "number", **_NUMBER_BOUNDS},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": {"$ref": _REF}},
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": {"$ref": _REF}},
    ],
}


def install_openapi(app: FastAPI) -> None:
    """Serve the generated document with the shared request rules written in (built once, then cached)."""

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_storable(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_storable(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components[STORED_VALUE] = STORED_VALUE_SCHEMA
    visited: set[str] = {STORED_VALUE}

    def follow(name: str) -> None:
        if name not in visited and name in components:
            visited.add(name)
            _constrain(components[name], follow)

    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                _constrain(parameter.get("schema", {}), follow)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _constrain(media.get("schema", {}), follow)
    return document


def _constrain(schema: dict[str, Any], follow: Callable[[str], None]) -> None:
    """Write the storable rules into one schema, in place, and into every schema it contains."""
    if "$ref" in schema:
        follow(schema["$ref"].rsplit("/", 1)[-1])
        return
    if not set(schema) - _ANNOTATIONS:  # anything at all
        schema["$ref"] = _REF
        return
    if "enum" in schema or "const" in schema:
        return
    kind = schema.get("type")
    if kind == "string" and "pattern" not in schema and "format" not in schema:
        schema["pattern"] = NO_NUL
    elif kind == "integer":
        for bound, value in _INTEGER_BOUNDS.items():
            schema.setdefault(bound, value)
    elif kind == "number":
        for bound, value in _NUMBER_BOUNDS.items():
            schema.setdefault(bound, value)
    elif kind == "object":
        extra = schema.get("additionalProperties")
        if extra is True or (extra is None and "properties" not in schema):
            schema["additionalProperties"] = {"$ref": _REF}
        if schema.get("additionalProperties") is not False:
            schema.setdefault("propertyNames", {"pattern": NO_NUL})
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            _constrain(schema[key], follow)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for part in schema.get(key, []):
            _constrain(part, follow)
    for part in schema.get("properties", {}).values():
        _constrain(part, follow)
