"""GET /api/v1/changes: the live-change stream for API clients (Server-Sent Events), the one the
console follows. Each event names the topics that changed (``instances``, ``instance:<id>``,
``execution:<id>``, ``session:<id>``, ``queue``, ``inbox``, ``overview``, …); read them again through
the API, with your own key and rights."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Reader
from api.live import change_stream, parse_topics

router = APIRouter(prefix="/api/v1/changes", tags=["changes"])


@router.get("", response_class=StreamingResponse)
async def follow_changes(
    request: Request,
    _: Reader,
    topics: Annotated[str, Query(max_length=3000, description="Comma-separated topics, at most 20")],
) -> StreamingResponse:
    """``event: change`` with the changed topics as data; a comment every 15 s keeps the connection."""
    return change_stream(request, parse_topics(topics))
