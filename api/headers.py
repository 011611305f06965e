"""Security headers on every answer: ``nosniff`` everywhere; on pages (the console and the API docs) a
Content-Security-Policy that allows only Trellis's own files (no inline script, no other origin, no
framing), and ``no-store`` on the console, whose pages hold a person's work and a CSRF token."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The console's one script (live.js) is a file of ours; it reads the change stream and its own pages.
CONSOLE_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI sets style attributes and reads the OpenAPI document with fetch; still no script but ours.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        extra: list[tuple[bytes, bytes]] = [(b"x-content-type-options", b"nosniff")]
        if path == "/ui" or path.startswith("/ui/"):
            extra += [
                (b"content-security-policy", CONSOLE_POLICY.encode()),
                (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"same-origin"),
            ]
            if not path.startswith("/ui/static/"):
                extra.append((b"cache-control", b"no-store"))
        elif path == "/docs" or path.startswith("/docs/"):
            extra += [
                (b"content-security-policy", DOCS_POLICY.encode()),
                (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"same-origin"),
            ]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in names)]
            await send(message)

        await self._app(scope, receive, sending)
