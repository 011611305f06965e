"""The work queue's part of the worker: item workflows, the daily signals, and rescoring open items when
their entities' signal fields change (an outbox reader)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.work.items import WorkActivities
from core.platform.settings import Settings
from core.work import store as work_store
from workflows.bundles import DomainBundle
from workflows.work.item import WorkItemWorkflow
from workflows.work.signals import WorkSignalsWorkflow

WORKFLOWS: tuple[type, ...] = (WorkItemWorkflow, WorkSignalsWorkflow)


def bundle(engine: AsyncEngine, settings: Settings) -> DomainBundle:
    work = WorkActivities(engine, settings.entity_max_bytes)
    return DomainBundle(
        "work",
        WORKFLOWS,
        [work.record, work.interpret, work.mark_started],
        outbox_subscribers=[work_store.rescore_on_events],
    )
