"""A small MCP server for the tests, written with the ``mcp`` package and spoken to over stdio:
``python -m tests.support.mcp_server``. Its tools: ``add`` (structured output), ``echo`` (text), and
``fail`` (answers with an error)."""

from __future__ import annotations

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
def fail(reason: str) -> str:
    """Always fail, with the reason."""
    raise ToolError(reason)


if __name__ == "__main__":
    server.run("stdio")
