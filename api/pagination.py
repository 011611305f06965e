"""Query parameters every list endpoint shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
# Offsets stay for the first pages; deeper, a cursor (next_cursor of the previous page) costs the same on
# any page where an offset makes the database walk every row it skips (decision 0012).
MAX_OFFSET = 10_000
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description=f"Items to skip, at most {MAX_OFFSET}; deeper pages use cursor")
]
Cursor = Annotated[
    str | None,
    Query(max_length=1000, description="next_cursor of the previous page: the next page, as fast at any depth"),
]
