"""Deterministic ids: the same workflow step always yields the same id, so retries upsert."""

from __future__ import annotations

import uuid

TRELLIS_NAMESPACE = uuid.UUID("6f1c2a5e-8d3b-4c1e-9a57-3e2b1f0d7c44")


def derived_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(TRELLIS_NAMESPACE, ":".join(str(p) for p in parts))
