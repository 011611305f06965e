"""The process domain's part of the worker: instance workflows and their state-entry activities."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.process.state_entry import ProcessActivities
from core.entities.contracts import limits_of
from core.platform.settings import Settings
from workflows.bundles import DomainBundle
from workflows.process.instance import ProcessInstanceWorkflow

WORKFLOWS: tuple[type, ...] = (ProcessInstanceWorkflow,)


def bundle(engine: AsyncEngine, settings: Settings) -> DomainBundle:
    process = ProcessActivities(engine, limits_of(settings))
    return DomainBundle("process", WORKFLOWS, [process.enter_state, process.record_approval])
