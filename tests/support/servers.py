"""Real servers on 127.0.0.1 for the automation tests: SMTP (aiosmtpd) and a programmable webhook
receiver (http.server in a thread). Both record what they receive."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Mailbox:
    """Takes every message, except by recipient: ``reject-…`` is refused with a permanent 554 at DATA;
    ``later-…`` gets a transient 451 on its first attempt, then is taken. ``attempts`` counts DATA
    commands per recipient."""

    messages: list[Message] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        to = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        self.attempts[to] = self.attempts.get(to, 0) + 1
        if to.startswith("reject-"):
            return "554 5.7.1 message refused by policy"
        if to.startswith("later-") and self.attempts[to] == 1:
            return "451 4.3.0 mailbox busy, try again later"
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
    """Behaviour by path: /hold/<tag> → 200 once ``release(tag)`` is called (at most 60 s);
    /ok/<tag> → 200; /fail/<tag> → 500; /gone/<tag> → 410;
    /rate/<tag> → 429 (Retry-After: 1) the first time, then 200; /flaky/<tag> → 500 twice, then 200;
    /slow/<tag> → 200 after 0.3 s; /redirect/<target-url-encoded> → 302 to the target. ``respond(path,
    body, statuses)`` makes a path answer ``body`` as JSON, with the statuses given (one per hit, the last
    one repeating)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.responses: dict[str, tuple[Any, list[int]]] = {}
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Event] = {}
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
                elif kind == "hold":
                    outer.gate(self.path.split("/")[2]).wait(timeout=60)
                elif kind == "redirect":
                    from urllib.parse import unquote

                    status, headers = 302, {"Location": unquote(self.path.split("/", 2)[2])}
                answer: Any = {"ok": status < 300}
                if self.path in outer.responses:
                    answer, statuses = outer.responses[self.path]
                    status = statuses[min(previous, len(statuses) - 1)]
                payload = json.dumps(answer).encode()
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

    def gate(self, tag: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(tag, threading.Event())

    def release(self, tag: str) -> None:
        self.gate(tag).set()

    def respond(self, path: str, body: Any, statuses: list[int] | None = None) -> None:
        with self._lock:
            self.responses[path] = (body, statuses or [200])

    def at(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path]


# Where the test MCP server "exitmcp" logs the SIGTERM the MCP client sends it (one file per test run).
MCP_EXIT_LOG = Path(tempfile.gettempdir()) / f"trellis-mcp-exit-{os.getpid()}.log"


# llama-cpp-python's server 0.3 answers response_format json_schema with this, as a 500.
LLAMA_CPP_JSON_SCHEMA_REFUSAL = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
)


class LlmServer:
    """A local server speaking the OpenAI Chat Completions protocol with scripted replies.

    The agent is read from the system prompt ("You are the <name> agent …"; the orchestrator's own call
    says "expert project orchestrator"); the case from a ``[case:<id>]`` marker in the user message.
    ``script(case, agent, [...])`` queues behaviours, consumed one per request: a dict (reply with it as
    JSON), ``"malformed"``, ``"schema-miss"`` (valid JSON, wrong shape), ``"429"`` (Retry-After: 1),
    ``"500"``, ``"cut-off"`` (half of a valid reply, ``finish_reason: length``, as a model stopped by
    ``max_tokens``), or ``("slow", seconds, reply_or_None)``. Without a script an agent gets a valid default.
    A request for the model ``refuses-json-schema`` with ``response_format`` ``json_schema`` is answered 500
    with the validation error, as llama-cpp-python's server answers it (it takes ``json_object`` with a
    ``schema`` beside it instead). A dict ``{"tool_calls": [{"name", "arguments", "id"?}]}`` answers with
    those tool calls (``finish_reason: tool_calls``), as a model that wants tools run. Every request is
    recorded with its start and end time, its messages, the ``response_format`` and the ``tools`` it carried."""

    DEFAULTS: dict[str, dict[str, Any]] = {
        "orchestrator": {"agents": ["planner", "estimator", "resource", "risk", "validator", "reporter"]},
        "planner": {
            "phases": [
                {"name": "Site Preparation", "duration_days": 1, "tasks": ["survey"]},
                {"name": "Equipment Installation", "duration_days": 2, "tasks": ["install"]},
                {"name": "Testing & Commissioning", "duration_days": 1, "tasks": ["test"]},
            ]
        },
        "estimator": {
            "total_cost": 12500,
            "currency": "USD",
            "line_items": [{"item": "Carrier AC", "cost": 9000}, {"item": "Labour", "cost": 3500}],
        },
        "resource": {"materials": ["1x Carrier AC", "1x Thermostat", "50ft copper tubing"], "labor": ["2 techs"]},
        "risk": {
            "risks": [
                {"risk": "Supply chain delays", "level": "High", "mitigation": "order early"},
                {"risk": "Weather delays", "level": "Medium", "mitigation": "buffer day"},
            ]
        },
        "analyzer": {"insights": ["similar jobs took 4 days"]},
        "lead_scorer": {"score": 82, "qualified": True, "reasons": ["budget confirmed"]},
        "revenue_tracker": {"expected_revenue": 48000, "currency": "USD"},
        "deploy_analyzer": {"diagnosis": "the new release exhausts its memory limit", "fix": "scale_up"},
        "validator": {"valid": True, "issues": []},
        "reporter": {
            "summary": "HVAC installation at 123 Main St: 4 days, $12,500.",
            "timeline_days": 4,
            "total_cost": 12500,
        },
    }

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.scripts: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                started = time.time()
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                messages = body.get("messages", [])
                system = next((m["content"] for m in messages if m["role"] == "system"), "")
                user = next((m["content"] for m in messages if m["role"] == "user"), "")
                agent = (
                    "orchestrator"
                    if "expert project orchestrator" in system
                    else (system.split("You are the ", 1)[1].split(" agent", 1)[0] if "You are the " in system else "?")
                )
                case = user.split("[case:", 1)[1].split("]", 1)[0] if "[case:" in user else ""
                with outer._lock:
                    queue = outer.scripts.get((case, agent), [])
                    behaviour = queue.pop(0) if queue else None
                record = {
                    "agent": agent,
                    "case": case,
                    "start": started,
                    "messages": messages,
                    "behaviour": behaviour if not isinstance(behaviour, dict) else "ok",
                    "response_format": body.get("response_format"),
                    "model": body.get("model"),
                    "tools": body.get("tools"),
                    "tool_choice": body.get("tool_choice"),
                }
                finish = "stop"
                status, headers, content = 200, {}, None
                if isinstance(behaviour, tuple) and behaviour[0] == "slow":
                    time.sleep(behaviour[1])
                    behaviour = behaviour[2]
                refuses = body.get("model") == "refuses-json-schema"
                message = None
                tool_calls = None
                if isinstance(behaviour, dict) and "tool_calls" in behaviour:
                    # A turn that asks for tools: {"tool_calls": [{"name", "arguments" (dict or text), "id"?}]}
                    tool_calls = [
                        {
                            "id": call.get("id") or f"call_{len(outer.requests)}_{index}",
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": call["arguments"]
                                if isinstance(call["arguments"], str)
                                else json.dumps(call["arguments"]),
                            },
                        }
                        for index, call in enumerate(behaviour["tool_calls"])
                    ]
                    finish = "tool_calls"
                elif refuses and (body.get("response_format") or {}).get("type") == "json_schema":
                    # As llama-cpp-python's server 0.3 answers it: a 500 carrying the validation error.
                    status, message = 500, LLAMA_CPP_JSON_SCHEMA_REFUSAL
                elif behaviour == "429":
                    status, headers = 429, {"Retry-After": "1"}
                elif behaviour == "500":
                    status = 500
                elif behaviour == "400":
                    status = 400
                elif behaviour == "malformed":
                    content = '{"phases": [ this is not json'
                elif behaviour == "schema-miss":
                    content = json.dumps({"unexpected": True})
                elif behaviour == "cut-off":
                    whole = json.dumps(outer.DEFAULTS.get(agent, {}))
                    content, finish = whole[: len(whole) // 2], "length"
                else:
                    content = json.dumps(behaviour if isinstance(behaviour, dict) else outer.DEFAULTS.get(agent, {}))
                if status == 200:
                    reply: dict[str, Any] = {"role": "assistant", "content": content}
                    if tool_calls is not None:
                        reply["tool_calls"] = tool_calls
                    payload = {
                        "id": f"chatcmpl-{len(outer.requests)}",
                        "object": "chat.completion",
                        "created": int(started),
                        "model": body.get("model", "scripted"),
                        "choices": [{"index": 0, "finish_reason": finish, "message": reply}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
                    }
                else:
                    text = message or f"scripted {status}"
                    payload = {"error": {"message": text, "type": "scripted", "code": status}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                record["end"] = time.time()
                record["status"] = status
                with outer._lock:
                    outer.requests.append(record)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, case: str, agent: str, behaviours: list[Any]) -> None:
        with self._lock:
            self.scripts[(case, agent)] = list(behaviours)

    def calls(self, case: str, agent: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["case"] == case and (agent is None or r["agent"] == agent)]


class McpHttpServer:
    """The test MCP server (tests/support/mcp_server.py) over streamable HTTP, as its own process on
    loopback; stopped by its PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.mcp_server", "http", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self._process.poll() is None, "the MCP test server exited at start"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("the MCP test server did not listen within 30 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
