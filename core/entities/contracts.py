"""Contracts of entities: the entity API's bodies, entity snapshots and the entity event (the outbox row)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.platform.contracts import JsonUuid, RequestModel
from core.platform.settings import Settings


class EntityCreate(RequestModel):
    name: str = Field(min_length=1, max_length=300)
    status: str | None = Field(default=None, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict)
    parent_id: JsonUuid | None = Field(default=None, description="Link the new entity under this entity")


class EntityUpdate(RequestModel):
    """A partial update: ``fields`` are merged; ``unset_fields`` are removed."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    status: str | None = Field(default=None, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict)
    unset_fields: list[str] = Field(default_factory=list, max_length=100)
    expected_version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Optimistic concurrency")


class EntityPublic(BaseModel):
    id: str
    entity_type: str
    name: str
    status: str | None
    fields: dict[str, Any]
    version: int
    created_ts: str | None
    updated_ts: str | None
    deleted: bool


class EntitySnapshot(BaseModel):
    """An entity as events carry it and as templates and conditions see it."""

    id: str
    entity_type: str
    name: str
    status: str | None
    fields: dict[str, Any]
    version: int
    created_ts: str | None = None
    updated_ts: str | None = None
    deleted: bool = False


class Cause(BaseModel):
    """One link of the chain of rules that led to a change (loop detection)."""

    rule_id: str
    event_id: str
    entity_id: str | None = None


EventKind = Literal["create", "update", "delete", "status_change", "field_change", "scheduled", "external_event"]


class EntityEventData(BaseModel):
    """One entity event (an f_entity_event row, or a scheduled firing) as automation sees it."""

    id: str
    entity_id: str | None
    entity_type: str
    event_kind: EventKind
    field_name: str | None = None
    old_value: Any = None
    new_value: Any = None
    old_entity: EntitySnapshot | None = None
    new_entity: EntitySnapshot | None = None
    causation: list[Cause] = Field(default_factory=list)
    actor: str | None = None
    created_ts: datetime


@dataclass(frozen=True)
class EntityLimits:
    """Caps on one entity (from settings: TRELLIS_ENTITY_MAX_FIELDS, TRELLIS_ENTITY_MAX_BYTES)."""

    max_fields: int = 500
    max_bytes: int = 256 * 1024


class EntityTooLarge(ValueError):
    """An entity would exceed a cap; the message names the cap and its setting."""


def check_entity(name: str, fields: dict[str, Any], limits: EntityLimits) -> None:
    """The one check of an entity's size, applied by the entity store to every create and change."""
    if len(fields) > limits.max_fields:
        raise EntityTooLarge(
            f"an entity may have at most {limits.max_fields} fields (TRELLIS_ENTITY_MAX_FIELDS); "
            f"this one would have {len(fields)}"
        )
    size = len(json.dumps(fields, separators=(",", ":"), default=str).encode()) + len(name.encode())
    if size > limits.max_bytes:
        raise EntityTooLarge(
            f"an entity may hold at most {limits.max_bytes} bytes of fields (TRELLIS_ENTITY_MAX_BYTES); "
            f"this one would hold {size}"
        )


def limits_of(settings: Settings) -> EntityLimits:
    return EntityLimits(max_fields=settings.entity_max_fields, max_bytes=settings.entity_max_bytes)
