"""Which variant a new run goes to: weighted rendezvous hashing of a key (the root entity, so a customer
keeps its variant) with each variant's name. Each variant scores -weight / ln(u), u the key's hash with
the variant's name in (0, 1); the highest wins, which picks each variant with probability weight / sum.
A variant taken out of routing moves only the keys that were its own: everyone else keeps theirs."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


def _unit(key: str, name: str) -> float:
    digest = hashlib.sha256(f"{key}\x00{name}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)  # strictly inside (0, 1)


def choose(key: str, variants: Sequence[tuple[str, float]]) -> str:
    """The variant (name, weight) ``key`` goes to; weights need not sum to anything."""
    live = [(name, weight) for name, weight in variants if weight > 0]
    if not live:
        raise ValueError("no variant to route to")
    return max(live, key=lambda v: -v[1] / math.log(_unit(key, v[0])))[0]
