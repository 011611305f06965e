"""A small MCP server for the tests, written with the ``mcp`` package: over stdio
(``python -m tests.support.mcp_server``) or over streamable HTTP on loopback
(``python -m tests.support.mcp_server http <port>``, at ``/mcp``). Its tools: ``add`` (structured
output), ``echo`` (text), ``repeat`` (as large an answer as asked for), and ``fail`` (answers with an error)."""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("trellis-test")


@server.tool()
def add(a: float, b: float) -> dict[str, float]:
    """Add two numbers."""
    return {"sum": a + b}


@server.tool()
def echo(text: str) -> str:
    """Answer the text as it is."""
    return text


@server.tool()
def repeat(text: str, times: int) -> str:
    """The text ``times`` times over (a server whose answer can be as large as it likes)."""
    return text * times


@server.tool()
async def pause(seconds: float) -> str:
    """Answer after ``seconds`` (a server slower than a step allows)."""
    await asyncio.sleep(seconds)
    return "done"


@server.tool()
def die() -> str:
    """The server process exits mid-call (a server that crashes at run time)."""
    os._exit(1)


@server.tool()
def fail(reason: str) -> str:
    """Always fail, with the reason."""
    raise ToolError(reason)


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
