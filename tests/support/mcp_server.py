"""A small MCP server for the tests, written with the ``mcp`` package: over stdio
(``python -m tests.support.mcp_server``) or over streamable HTTP on loopback
(``python -m tests.support.mcp_server http <port>``, at ``/mcp``). Its tools: ``add`` (structured
output), ``echo`` (text), ``repeat`` (as large an answer as asked for), ``pause``, ``die``, content of
every kind, and ``fail`` (answers with an error). With ``TRELLIS_TEST_MCP_EXIT_LOG`` set, a SIGTERM is
logged there with its time before the process exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import anyio
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
def tally(tag: str) -> int:
    """Count a call (an effect the tests can count): appends ``tag`` to TRELLIS_TEST_MCP_TALLY's file."""
    path = os.environ.get("TRELLIS_TEST_MCP_TALLY")
    if not path:
        raise ToolError("TRELLIS_TEST_MCP_TALLY is not set")
    with open(path, "a") as sink:
        sink.write(tag + "\n")
    with open(path) as source:
        return sum(1 for line in source if line.strip() == tag)


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
async def hold(seconds: float) -> str:
    """Answer after ``seconds``, whatever happens meanwhile (a server that does not stop when its stdin
    closes, as a busy one does not: the client then waits its grace period and sends SIGTERM)."""
    with anyio.CancelScope(shield=True):
        await anyio.sleep(seconds)
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


def _log_termination(log: str) -> None:
    """When and how this process is told to stop (SIGTERM, which the MCP client sends after closing
    stdin and two seconds' grace): a test compares it with when the step failed."""

    def stopped(signum: int, frame: object) -> None:
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {time.time()}\n")
        os._exit(0)

    signal.signal(signal.SIGTERM, stopped)


if __name__ == "__main__":
    if os.environ.get("TRELLIS_TEST_MCP_EXIT_LOG"):
        _log_termination(os.environ["TRELLIS_TEST_MCP_EXIT_LOG"])
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
