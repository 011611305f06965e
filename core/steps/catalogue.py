"""The one catalogue of tools, composed above the domains (docs/decisions/0009): the step tools
(core/steps/tools.py), automation's rule actions (core/automation/actions.py) and the tools of the MCP
servers the settings declare. Validation, the published schema and the worker all read it.

Rule actions are called with a rule and its event (their parameters are templates over the event) and
step tools with resolved parameters keyed by (execution, step); a step cannot call a rule action and a
rule reaches step workflows through its ``start_workflow`` action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from core.automation.actions import SPECS as RULE_ACTIONS
from core.platform.tools import ToolSpec
from core.steps.mcp import McpCatalogue, McpTool, McpUnavailable
from core.steps.tools import STEP_TOOLS, McpCallOutput

Source = Literal["trellis", "mcp", "rule"]


@dataclass(frozen=True)
class ToolEntry:
    """What a step may call, as validation and the schema see it."""

    name: str
    description: str
    source: Source
    params_model: type[BaseModel] | None  # a Trellis tool's typed input
    params_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    annotations: dict[str, Any] | None = None  # an MCP tool's hints, as its server declares them

    @staticmethod
    def of_spec(spec: ToolSpec[Any, Any], source: Source = "trellis") -> ToolEntry:
        return ToolEntry(
            name=spec.name,
            description=spec.description or (spec.params.__doc__ or "").strip().split("\n")[0],
            source=source,
            params_model=spec.params,
            params_schema=spec.params.model_json_schema(),
            output_schema=spec.output.model_json_schema(),
        )

    @staticmethod
    def of_mcp(tool: McpTool) -> ToolEntry:
        """The step's output is McpCallOutput, whose ``result`` is the server's structured content: where the
        server declares an outputSchema, that is the schema of ``result``."""
        output = McpCallOutput.model_json_schema(by_alias=True)
        if tool.output_schema is not None:
            output["properties"]["result"] = tool.output_schema
        return ToolEntry(tool.qualified, tool.description, "mcp", None, tool.input_schema, output, tool.annotations)


TRELLIS_TOOLS: dict[str, ToolEntry] = {name: ToolEntry.of_spec(spec) for name, spec in STEP_TOOLS.items()}


class Catalogue:
    """Step tools and MCP tools by name (one per process, around its MCP catalogue)."""

    def __init__(self, mcp: McpCatalogue) -> None:
        self.mcp = mcp

    async def lookup(self, name: str) -> ToolEntry | None:
        """The tool a step names; raises McpUnavailable when its MCP server cannot say."""
        if name in TRELLIS_TOOLS:
            return TRELLIS_TOOLS[name]
        tool = await self.mcp.tool(name)
        return ToolEntry.of_mcp(tool) if tool is not None else None

    async def listing(self) -> tuple[list[ToolEntry], dict[str, str]]:
        """Every tool a step may call, and the MCP servers that could not be listed (with why)."""
        entries = list(TRELLIS_TOOLS.values())
        problems: dict[str, str] = {}
        for server in sorted(self.mcp.servers):
            try:
                entries += [ToolEntry.of_mcp(t) for t in (await self.mcp.tools_of(server)).values()]
            except McpUnavailable as exc:
                problems[server] = str(exc)
        return entries, problems


def rule_actions() -> list[ToolEntry]:
    return [ToolEntry.of_spec(spec, "rule") for spec in RULE_ACTIONS.values()]
