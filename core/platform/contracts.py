"""Contract bases shared by every domain: strict models, storable request bodies, roles and pages.

Every workflow, update, query and activity takes one model in and returns one out, so fields can
be added later without breaking callers or replays.
"""

from __future__ import annotations

import math
import uuid
from types import UnionType
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

T = TypeVar("T")


Role = Literal["admin", "operator", "approver", "viewer"]


class StrictModel(BaseModel):
    """Base for contracts: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


MAX_JSON_DEPTH = 32


MAX_JSON_INT = 2**63 - 1
# The largest magnitude a fractional number may have: exactly representable as a double, and below
# 2**63 so that a whole-numbered float is also a 64-bit integer (the OpenAPI describes both bounds).
MAX_JSON_FLOAT = 9.2e18


def check_storable(value: Any, path: str = "body", depth: int = 0) -> None:
    """Refuse what Postgres cannot store or should not be asked to: NUL characters (rejected in text
    and JSONB), integers beyond 64 bits, non-finite numbers, and nesting deeper than MAX_JSON_DEPTH.
    Every request body passes it (RequestModel), so entity data is checked alike on every way in."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path}: text must not contain NUL (\\u0000) characters")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise ValueError(f"{path}: number is outside the 64-bit integer range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: number must be finite (NaN, Infinity and values like 1e400 cannot be stored)")
        if abs(value) > MAX_JSON_FLOAT:
            raise ValueError(f"{path}: number is outside the range ±{MAX_JSON_FLOAT:g}")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, f"{path} key", depth + 1)
            check_storable(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{path}[{index}]", depth + 1)


def field_path(loc: tuple[int | str, ...] | list[int | str], prefix: str = "") -> str:
    """A field's path as a person writes it, e.g. ``steps[1].params.url`` (list positions in brackets)."""
    where = prefix
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


class RequestPart(StrictModel):
    """Base for the models a request body is made of: JSON types are taken as they are (``0`` is not
    ``false``, ``"1"`` is not ``1``), as the OpenAPI says. A whole number written ``5.0`` is an integer
    in JSON Schema, so integer fields take it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        converted = dict(data)
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if key in converted:
                converted[key] = _as_integers(converted[key], field.annotation)
        return converted


def _as_integers(value: Any, annotation: Any) -> Any:
    """``value`` with whole-numbered floats made ints where ``annotation`` wants an int (or ints)."""
    if isinstance(value, float) and value.is_integer() and _wants(annotation, int):
        return int(value)
    if isinstance(value, list):
        item = _list_item(annotation)
        if item is not None:
            return [_as_integers(v, item) for v in value]
    return value


def _unwrapped(annotation: Any) -> Any:
    """``int`` for ``Annotated[int, Field(ge=0)]`` (a bounded id), the annotation itself otherwise."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _wants(annotation: Any, kind: type) -> bool:
    annotation = _unwrapped(annotation)
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    options = tuple(_unwrapped(option) for option in options)
    return kind in options and float not in options


def _list_item(annotation: Any) -> Any:
    annotation = _unwrapped(annotation)
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    for option in options:
        if get_origin(option) is list:
            return get_args(option)[0]
    return None


# A UUID in a request body arrives as JSON text; strict models would otherwise want a UUID object.
JsonUuid = Annotated[uuid.UUID, Strict(False)]


def _timestamp_text(value: Any) -> Any:
    """A timestamp is ISO 8601 text in JSON (the OpenAPI says string, date-time): not a number."""
    if isinstance(value, int | float):
        raise ValueError("a timestamp is ISO 8601 text with its offset, e.g. 2026-12-24T09:00:00Z")
    return value


# A timestamp as JSON writes one (ISO 8601 text), with its offset: a time without one is refused.
JsonDatetime = Annotated[AwareDatetime, Strict(False), BeforeValidator(_timestamp_text)]


class RequestModel(RequestPart):
    """Base for API request bodies: strict, and storable as a whole (see ``check_storable``)."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_storable(data)
        return data


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = Field(
        default=None, description="Pass as ?cursor= for the next page (fast at any depth); null on the last page"
    )
