"""Contracts of the entity API."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from core.platform.contracts import RequestModel


class EntityCreate(RequestModel):
    name: str = Field(min_length=1, max_length=300)
    status: str | None = Field(default=None, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict)
    parent_id: uuid.UUID | None = Field(default=None, description="Link the new entity under this entity")


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
