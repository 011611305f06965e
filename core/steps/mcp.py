"""MCP servers' tools for steps (seed 003's ``server.toolName``), through the ``mcp`` package.

The settings declare servers (TRELLIS_MCP_SERVERS): a command started over stdio, or a streamable-HTTP
URL whose host passes the webhook address policy. ``list_tools`` answers ``tools/list`` (kept for
TRELLIS_MCP_LIST_CACHE_SECONDS); ``call_tool`` opens a session, calls one tool and closes it. A step
names such a tool ``<server>.<tool>``; its params are checked against the tool's input schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import PaginatedRequestParams, TextContent

from core.effects.ssrf import AllowList, BlockedDestination, IPAddress, check_destination
from core.platform.settings import McpServer, Settings


class McpUnavailable(Exception):
    """The server could not be started, reached or spoken to. ``permanent``: it refused us (401/403), so
    trying again without an admin changing something will not help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _leaves(error: BaseException) -> list[BaseException]:
    """The errors inside an exception group, however nested (the mcp package raises from anyio task
    groups, so a refused connection arrives as ExceptionGroup(ExceptionGroup(ConnectError)))."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _unavailable(name: str, error: BaseException, statuses: Sequence[int] = ()) -> McpUnavailable:
    """What a person can act on, from whatever the transport raised (and the HTTP statuses it saw: the
    ``mcp`` client turns a 401 into "Server returned an error response")."""
    refused = next((status for status in statuses if status in (401, 403)), None)
    if refused is not None:
        return McpUnavailable(
            f"MCP server '{name}' refused Trellis ({refused}): check its credentials in TRELLIS_MCP_SERVERS",
            permanent=True,
        )
    leaves = [leaf for leaf in _leaves(error) if not isinstance(leaf, asyncio.CancelledError)] or [error]
    for leaf in leaves:
        if isinstance(leaf, McpUnavailable):
            return leaf
        if isinstance(leaf, httpx.HTTPStatusError) and leaf.response.status_code in (401, 403):
            status = leaf.response.status_code
            return McpUnavailable(
                f"MCP server '{name}' refused Trellis ({status} {leaf.response.reason_phrase}): check its "
                "credentials in TRELLIS_MCP_SERVERS",
                permanent=True,
            )
    leaf = leaves[0]
    if isinstance(leaf, TimeoutError):
        return McpUnavailable(f"MCP server '{name}' did not answer in time")
    if isinstance(leaf, httpx.HTTPStatusError):
        return McpUnavailable(f"MCP server '{name}' answered {leaf.response.status_code}")
    if isinstance(leaf, MCPError):
        return McpUnavailable(f"MCP server '{name}' failed: {leaf.error.message}")
    text = str(leaf).splitlines()[0][:300] if str(leaf) else type(leaf).__name__
    if isinstance(leaf, (OSError, httpx.TransportError, anyio.ClosedResourceError, anyio.EndOfStream)):
        return McpUnavailable(f"MCP server '{name}' could not be reached: {text or 'the connection closed'}")
    return McpUnavailable(f"MCP server '{name}' failed: {type(leaf).__name__}: {text}")


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None  # the server's outputSchema: what its structured content is
    annotations: dict[str, Any] | None = None  # readOnlyHint, idempotentHint, destructiveHint, openWorldHint, …

    @property
    def qualified(self) -> str:
        return f"{self.server}.{self.name}"


@dataclass
class McpCatalogue:
    """The declared servers' tools, listed on demand and kept for a while (one per process)."""

    settings: Settings
    _cache: dict[str, tuple[float, dict[str, McpTool]]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def servers(self) -> dict[str, McpServer]:
        return self.settings.mcp_servers

    async def tools_of(self, server: str) -> dict[str, McpTool]:
        """The server's tools by name; raises McpUnavailable."""
        async with self._lock:
            cached = self._cache.get(server)
            if cached and time.monotonic() - cached[0] < self.settings.mcp_list_cache_seconds:
                return cached[1]
            listed = await list_tools(server, self.servers[server], self.settings)
            self._cache[server] = (time.monotonic(), listed)
            return listed

    async def tool(self, qualified: str) -> McpTool | None:
        """The tool a step names, or None when no declared server has it (McpUnavailable if unsure)."""
        server, _, name = qualified.partition(".")
        if server not in self.servers:
            return None
        return (await self.tools_of(server)).get(name)


def _check_url(url: str, settings: Settings) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise McpUnavailable(f"MCP url {url!r} is not an http(s) URL")


@contextlib.asynccontextmanager
async def _session(name: str, server: McpServer, settings: Settings) -> AsyncIterator[ClientSession]:
    statuses: list[int] = []  # what a URL server answered, to name a refusal the client hides
    try:
        if server.command is not None:
            params = StdioServerParameters(command=server.command[0], args=server.command[1:], env=server.env or None)
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), server.timeout_seconds)
                yield session
        else:
            assert server.url is not None
            await _checked_destination(server.url, settings)
            http = create_mcp_http_client(headers=_headers(server, settings))

            async def seen(response: Any) -> None:
                statuses.append(response.status_code)

            http.event_hooks["response"].append(seen)
            async with (
                http,
                streamable_http_client(server.url, http_client=http) as streams,
                ClientSession(streams[0], streams[1]) as session,
            ):
                await asyncio.wait_for(session.initialize(), server.timeout_seconds)
                yield session
    except McpUnavailable:
        raise
    except Exception as exc:  # the transport's errors, often inside exception groups: one readable reason
        raise _unavailable(name, exc, statuses) from exc


def _headers(server: McpServer, settings: Settings) -> dict[str, str]:
    """A URL server's headers as the admin wrote them in the settings, ``secret:<name>`` resolved."""
    return {
        header: settings.webhook_secrets[value.removeprefix("secret:")] if value.startswith("secret:") else value
        for header, value in server.headers.items()
    }


async def _checked_destination(url: str, settings: Settings) -> None:
    """The webhook address policy, for an MCP server's URL, checked at each connection. (The server is
    declared by an admin in the settings, not by a user; the connection is not pinned to the checked
    address as a webhook's is.)"""
    _check_url(url, settings)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
        addresses: list[IPAddress] = [literal]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise McpUnavailable(f"cannot resolve {host}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    try:
        check_destination(
            host, addresses, AllowList(settings.allow_list(), public=settings.webhook_public_destinations)
        )
    except BlockedDestination as exc:
        raise McpUnavailable(f"MCP server {url!r} is refused by the address policy: {exc}") from exc


async def list_tools(name: str, server: McpServer, settings: Settings) -> dict[str, McpTool]:
    async with _session(name, server, settings) as session:
        tools: dict[str, McpTool] = {}
        cursor: str | None = None
        for _ in range(50):  # pages of tools/list, bounded
            listed = await asyncio.wait_for(
                session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None),
                server.timeout_seconds,
            )
            for tool in listed.tools:
                output = getattr(tool, "output_schema", None)
                hints = getattr(tool, "annotations", None)
                tools[tool.name] = McpTool(
                    name,
                    tool.name,
                    tool.description or "",
                    dict(tool.input_schema or {}),
                    dict(output) if output else None,
                    hints.model_dump(mode="json", by_alias=True, exclude_none=True) if hints is not None else None,
                )
            cursor = listed.next_cursor
            if not cursor:
                break
        return tools


@dataclass(frozen=True)
class McpAnswer:
    result: Any
    is_error: bool
    content: list[dict[str, Any]] = field(default_factory=list)
    json: Any = None


def read_answer(structured: Any, content: list[Any], is_error: bool) -> McpAnswer:
    """Every content item kept as the protocol writes it (text, image, audio, resource, resource_link, with
    annotations); ``result`` is the structured content, else the text parts joined, else (no text at all)
    the items themselves, so a non-empty answer is never empty; ``json`` is the joined text read as JSON
    when it is JSON, so its fields can be referenced by path."""
    items = [part.model_dump(mode="json", by_alias=True, exclude_none=True) for part in content]
    texts = [part.text for part in content if isinstance(part, TextContent)]
    if structured is not None:
        result: Any = structured
    elif texts:
        result = "\n".join(texts)
    else:
        result = items if items else ""
    parsed = None
    if structured is None and texts:
        try:
            parsed = json.loads("\n".join(texts))
        except ValueError:
            parsed = None
    return McpAnswer(result, is_error, items, parsed)


async def call_tool(
    name: str, server: McpServer, settings: Settings, tool: str, arguments: dict[str, Any], seconds: float
) -> McpAnswer:
    """Call one tool; raises McpUnavailable when the server cannot be reached or does not answer."""
    async with _session(name, server, settings) as session:
        try:
            answer = await asyncio.wait_for(session.call_tool(tool, arguments), seconds)
        except TimeoutError as exc:
            raise McpUnavailable(f"MCP tool {name}.{tool} did not answer within {seconds:g}s") from exc
    return read_answer(
        getattr(answer, "structured_content", None),
        list(getattr(answer, "content", []) or []),
        bool(getattr(answer, "is_error", False)),
    )
