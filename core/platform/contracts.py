"""Contract bases shared by every domain: strict models, storable request bodies, roles and pages.

Every workflow, update, query and activity takes one model in and returns one out, so fields can
be added later without breaking callers or replays.
"""

from __future__ import annotations

import math
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

T = TypeVar("T")


Role = Literal["admin", "operator", "approver", "viewer"]


class StrictModel(BaseModel):
    """Base for contracts: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


MAX_JSON_DEPTH = 32


MAX_JSON_INT = 2**63 - 1


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
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, f"{path} key", depth + 1)
            check_storable(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{path}[{index}]", depth + 1)


class RequestModel(StrictModel):
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
