"""Deterministic ids: the same workflow step always yields the same id, so retries upsert."""

from __future__ import annotations

import uuid

TRELLIS_NAMESPACE = uuid.UUID("6f1c2a5e-8d3b-4c1e-9a57-3e2b1f0d7c44")


def derived_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(TRELLIS_NAMESPACE, ":".join(str(p) for p in parts))


def process_workflow_id(template_code: str, instance_id: str) -> str:
    """Readable workflow id for a process instance, e.g. ``process-HS_STD-<uuid>``."""
    return f"process-{template_code}-{instance_id}"


def state_entity_id(instance_id: str, seq: int) -> uuid.UUID:
    return derived_id("entity", instance_id, seq)


def event_id(instance_id: str, seq: int, event_type: str) -> uuid.UUID:
    return derived_id("event", instance_id, seq, event_type)
