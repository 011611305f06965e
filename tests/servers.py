"""Real servers on 127.0.0.1 for the automation tests: SMTP (aiosmtpd) and a programmable webhook
receiver (http.server in a thread). Both record what they receive."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> int:
        self.controller.start()
        return self.port

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class Hit:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    ts: float


class WebhookServer:
    """Behaviour by path: /ok/<tag> → 200; /fail/<tag> → 500; /gone/<tag> → 410;
    /rate/<tag> → 429 (Retry-After: 1) the first time, then 200; /flaky/<tag> → 500 twice, then 200;
    /slow/<tag> → 200 after 0.3 s; /redirect/<target-url-encoded> → 302 to the target."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    previous = sum(1 for h in outer.hits if h.path == self.path)
                    outer.hits.append(
                        Hit(self.path, self.command, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                kind = self.path.split("/")[1]
                status, headers = 200, {}
                if kind == "fail":
                    status = 500
                elif kind == "gone":
                    status = 410
                elif kind == "rate" and previous == 0:
                    status, headers = 429, {"Retry-After": "1"}
                elif kind == "flaky" and previous < 2:
                    status = 500
                elif kind == "slow":
                    time.sleep(0.3)
                elif kind == "redirect":
                    from urllib.parse import unquote

                    status, headers = 302, {"Location": unquote(self.path.split("/", 2)[2])}
                payload = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> int:
        self.thread.start()
        return self.port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path]
