"""The API docs at ``/docs``: Swagger UI 5 (it reads the OpenAPI 3.1 FastAPI writes; the
``swagger-ui-bundle`` wheel carries 4.15, which cannot) vendored from the npm package
``swagger-ui-dist`` with its licence (api/static/vendor/), started by a script file of ours. Nothing is
fetched from another origin, so the docs work offline and under a Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import ApiError

router = APIRouter(include_in_schema=False)

OURS = Path(__file__).parent / "static"
SWAGGER = OURS / "vendor" / "swagger-ui-dist-5.35.0"
ASSETS = {
    "swagger-ui.css": (SWAGGER, "text/css"),
    "swagger-ui-bundle.js": (SWAGGER, "text/javascript"),
    "favicon-32x32.png": (SWAGGER, "image/png"),
    "docs.js": (OURS, "text/javascript"),
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trellis API</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no docs asset '{name}'")
    folder, media_type = ASSETS[name]
    return FileResponse(folder / name, media_type=media_type)
