"""The live-change stream (Server-Sent Events) the console's pages and API clients follow: which of
their topics changed, never the data, which they read again with their own roles. Fed by the process's
one ``ChangeFeed`` (core/platform/changes.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from api.errors import ApiError
from core.platform.changes import MAX_TOPICS, TOPIC, ChangeFeed

KEEPALIVE_SECONDS = 15.0


def parse_topics(raw: str) -> set[str]:
    topics = {t for t in raw.split(",") if t}
    if not topics:
        raise ApiError(422, "validation_error", "name at least one topic, e.g. ?topics=instances,instance:<id>")
    if len(topics) > MAX_TOPICS:
        raise ApiError(422, "validation_error", f"at most {MAX_TOPICS} topics per stream")
    bad = sorted(t for t in topics if not TOPIC.match(t))
    if bad:
        raise ApiError(422, "validation_error", f"not a topic: {bad[0][:100]!r} (a word, or word:id)")
    return topics


async def _events(request: Request, feed: ChangeFeed, topics: set[str]) -> AsyncIterator[bytes]:
    async with feed.subscribe(topics) as subscriber:
        yield b"retry: 2000\n: listening\n\n"
        while not await request.is_disconnected():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriber.wake.wait(), timeout=KEEPALIVE_SECONDS)
            changed = subscriber.take()
            yield f"event: change\ndata: {' '.join(sorted(changed))}\n\n".encode() if changed else b": keepalive\n\n"


def change_stream(request: Request, topics: set[str]) -> StreamingResponse:
    feed: ChangeFeed = request.app.state.changes
    return StreamingResponse(
        _events(request, feed, topics),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
