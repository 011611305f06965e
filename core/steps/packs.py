"""The example step workflows of packs/workflows/ (adapted from seeds 003 and 002), stored as version 1
when no workflow of that name exists (an admin's versions are kept)."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.paths import PACKS_DIR
from core.steps import store
from core.steps.catalogue import TRELLIS_TOOLS, ToolEntry
from core.steps.definition import StepWorkflowDefinition
from core.steps.validation import check

WORKFLOW_PACKS = PACKS_DIR / "workflows"


def read_pack(name: str) -> StepWorkflowDefinition:
    return StepWorkflowDefinition.model_validate(json.loads((WORKFLOW_PACKS / f"{name}.json").read_text()))


async def _trellis_tool(name: str) -> ToolEntry | None:
    return TRELLIS_TOOLS.get(name)


async def seed_workflows(conn: AsyncConnection) -> None:
    for path in sorted(WORKFLOW_PACKS.glob("*.json")):
        definition = read_pack(path.stem)
        problems = await check(definition, _trellis_tool)
        if problems:  # a broken pack is a bug of this repository: say where
            raise ValueError(f"{path}: " + "; ".join(f"{p.path}: {p.message}" for p in problems))
        if await store.latest_version(conn, definition.name) is None:
            await store.store_version(conn, definition, "system:packs", first=True)
