"""The one reading of an HTTP Retry-After header (seconds or an HTTP date), for every outbound call."""

from __future__ import annotations

import time
from datetime import timedelta
from email.utils import parsedate_to_datetime

MAX_WAIT_SECONDS = 3600.0


def retry_after_delay(value: str | None) -> timedelta | None:
    """The wait the server asked for, capped at an hour; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return timedelta(seconds=max(0.0, min(float(text), MAX_WAIT_SECONDS)))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return timedelta(seconds=max(0.0, min(moment.timestamp() - time.time(), MAX_WAIT_SECONDS)))
