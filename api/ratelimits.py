"""Per-key rate limits (the ``limits`` library, moving windows): every request counts against its API
key's budget; session starts and LLM tokens have budgets of their own. Over a budget the answer is 429
with ``Retry-After``.

The windows live in each API process's memory: with several API replicas each enforces the budget on
its own share of the traffic (a shared store would make them global).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.errors import ApiError


class RateLimits:
    def __init__(self, requests: str, session_starts: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.requests: RateLimitItem = parse(requests)
        self.session_starts: RateLimitItem = parse(session_starts)

    def hit(self, limit: RateLimitItem, key: str, what: str) -> None:
        """Count one against ``key``'s budget, or refuse with 429 and the seconds to wait."""
        if self._limiter.hit(limit, key):
            return
        reset = self._limiter.get_window_stats(limit, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"{what}: the budget of {limit} per API key is used up; retry in {wait}s",
            headers={"Retry-After": str(wait)},
        )


def valid_limit(value: str) -> str:
    """A setting's rate, checked at start (e.g. '600/minute', '20 per hour')."""
    parse(value)
    return value
