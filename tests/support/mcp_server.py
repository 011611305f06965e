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
from mcp.types import (
    Annotations,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)

server = MCPServer("trellis-test")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True))
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


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@server.tool(structured_output=False)
def picture() -> list[ContentBlock]:
    """An image and a caption (content other than text)."""
    return [
        ImageContent(type="image", data=PIXEL, mimeType="image/png"),
        TextContent(type="text", text="a 1x1 pixel", annotations=Annotations(audience=["user"])),
    ]


@server.tool(structured_output=False)
def document() -> list[ContentBlock]:
    """Only an embedded resource and a link to another (no text part at all)."""
    return [
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(uri="file:///reports/q3.txt", mimeType="text/plain", text="Q3: up 4%"),
        ),
        ResourceLink(type="resource_link", uri="file:///reports/q4.txt", name="q4.txt", mimeType="text/plain"),
    ]


@server.tool(structured_output=False)
def json_text() -> list[ContentBlock]:
    """JSON written as a text part (no structured content)."""
    return [TextContent(type="text", text='{"order": {"id": "A-7", "lines": [{"sku": "X", "qty": 2}]}}')]


@server.tool()
def fail(reason: str) -> str:
    """Always fail, with the reason."""
    raise ToolError(reason)


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
