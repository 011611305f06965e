"""The console's live updates: ``/ui/live`` streams which of a page's topics changed (signed-in
viewers only), and ``/ui/static/live.js`` re-reads the page and swaps its content in."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from api.errors import ApiError
from api.live import change_stream, parse_topics
from api.ui.common import viewer

router = APIRouter(prefix="/ui", include_in_schema=False)
STATIC = Path(__file__).parent / "static"


@router.get("/live")
async def live(request: Request, topics: str = "") -> Response:
    await viewer(request)
    try:
        wanted = parse_topics(topics[:3000])
    except ApiError as exc:
        return Response(exc.detail, status_code=exc.status, media_type="text/plain")
    return change_stream(request, wanted)


@router.get("/static/live.js")
async def script() -> FileResponse:
    return FileResponse(STATIC / "live.js", media_type="text/javascript")
