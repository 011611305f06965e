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
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PaginatedRequestParams, TextContent

from core.automation.ssrf import AllowList, BlockedDestination, IPAddress, check_destination
from core.platform.settings import McpServer, Settings


class McpUnavailable(Exception):
    """The server could not be started, reached or spoken to."""


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]

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
    try:
        if server.command is not None:
            params = StdioServerParameters(command=server.command[0], args=server.command[1:], env=server.env or None)
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), server.timeout_seconds)
                yield session
        else:
            assert server.url is not None
            await _checked_destination(server.url, settings)
            async with streamable_http_client(server.url) as streams, ClientSession(streams[0], streams[1]) as session:
                await asyncio.wait_for(session.initialize(), server.timeout_seconds)
                yield session
    except McpUnavailable:
        raise
    except (OSError, TimeoutError) as exc:
        raise McpUnavailable(f"MCP server '{name}' could not be reached: {exc}") from exc


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
                tools[tool.name] = McpTool(name, tool.name, tool.description or "", dict(tool.input_schema or {}))
            cursor = listed.next_cursor
            if not cursor:
                break
        return tools


@dataclass(frozen=True)
class McpAnswer:
    result: Any
    is_error: bool


async def call_tool(
    name: str, server: McpServer, settings: Settings, tool: str, arguments: dict[str, Any], seconds: float
) -> McpAnswer:
    """Call one tool; raises McpUnavailable when the server cannot be reached or does not answer."""
    async with _session(name, server, settings) as session:
        try:
            answer = await asyncio.wait_for(session.call_tool(tool, arguments), seconds)
        except TimeoutError as exc:
            raise McpUnavailable(f"MCP tool {name}.{tool} did not answer within {seconds:g}s") from exc
    structured = getattr(answer, "structured_content", None)
    if structured is not None:
        result: Any = structured
    else:
        texts = [part.text for part in getattr(answer, "content", []) if isinstance(part, TextContent)]
        result = "\n".join(texts)
    return McpAnswer(result, bool(getattr(answer, "is_error", False)))
