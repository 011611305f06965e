"""JSON Schemas that people author and data is checked against: agents' output schemas and human tasks'
forms. The data (a model's text, a person's form fields) is hostile, so the schema is bounded when it is
saved: no regular expressions (Python's ``re`` backtracks, and a check runs under the GIL, inside a
workflow's update validator or an activity), no reference outside the schema itself (jsonschema would
fetch it), and a bounded size and depth. Checking a value never reaches the network."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

MAX_SCHEMA_BYTES = 65_536
MAX_SCHEMA_DEPTH = 20
REGULAR_EXPRESSIONS = ("pattern", "patternProperties")


def _no_retrieval(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


# A registry that knows no remote resource and refuses to retrieve one.
_LOCAL_ONLY: Registry[Any] = Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]


def check_bounded_schema(schema: dict[str, Any], path: str, what: str) -> dict[str, Any]:
    """``schema`` when it is a valid JSON Schema within the bounds above; else ValueError naming the place."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"{path} is not a valid JSON schema: {exc.message}") from exc
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > MAX_SCHEMA_BYTES:
        raise ValueError(f"{path} is {size} bytes as JSON; {what} may have at most {MAX_SCHEMA_BYTES}")
    _check_keywords(schema, path, what, 0)
    return schema


def _check_keywords(value: Any, path: str, what: str, depth: int) -> None:
    if depth > MAX_SCHEMA_DEPTH:
        raise ValueError(f"{path}: {what} nest at most {MAX_SCHEMA_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in REGULAR_EXPRESSIONS:
                raise ValueError(f"{path}.{key}: regular expressions are not allowed in {what}")
            if key in ("$ref", "$dynamicRef") and not (isinstance(item, str) and item.startswith("#")):
                raise ValueError(f"{path}.{key}: only references inside the schema ('#/...') are allowed")
            _check_keywords(item, f"{path}.{key}", what, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keywords(item, f"{path}[{index}]", what, depth + 1)


def validation_error(schema: dict[str, Any], value: Any) -> str | None:
    """The first way ``value`` breaks ``schema``, as a sentence; None when it conforms. A schema that cannot
    be used (saved before the bounds above, or broken) is a sentence too, never an exception, and nothing
    is fetched."""
    try:
        check_bounded_schema(schema, "the schema", "schemas that check data")
    except ValueError as exc:  # stored before these bounds: refused, never run
        return f"cannot be checked: {exc}; an admin must correct it"
    try:
        validator = Draft202012Validator(schema, registry=_LOCAL_ONLY)
        error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(e.path))), None)
    except (SchemaError, Unresolvable, RecursionError) as exc:
        return f"the schema cannot be used to check it ({type(exc).__name__}: {exc}); an admin must correct it"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.path) or "the top level"
    return f"at {where}: {error.message}"
