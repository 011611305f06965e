"""The process domain's part of the worker: instance workflows and their state-entry activities,
migrations between template versions with their batch activity, and the forecast watch."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.process.approvals import ApprovedTransitions
from activities.process.forecasts import ForecastActivities
from activities.process.migration import MigrationActivities
from activities.process.state_entry import ProcessActivities
from core.entities.contracts import limits_of
from core.platform.settings import Settings
from workflows.bundles import DomainBundle
from workflows.process.instance import ProcessInstanceWorkflow
from workflows.process.migration import InstanceMigrationWorkflow
from workflows.process.watch import ForecastWatchWorkflow

WORKFLOWS: tuple[type, ...] = (ProcessInstanceWorkflow, InstanceMigrationWorkflow, ForecastWatchWorkflow)


def bundle(engine: AsyncEngine, settings: Settings) -> DomainBundle:
    process = ProcessActivities(engine, limits_of(settings))
    batches = MigrationActivities(engine)
    approved = ApprovedTransitions()
    forecasts = ForecastActivities(engine)
    return DomainBundle(
        "process",
        WORKFLOWS,
        [
            process.enter_state,
            process.record_approval,
            process.migrate,
            batches.batch,
            approved.perform_transition,
            forecasts.watch,
        ],
    )
