"""Experiments (issue 26): start one on a template or a step workflow (admins), read and analyse it
(readers), promote a variant or end it (admins). Promoting a variant that is not the newest version
stores it again as the newest (the templates' or the step workflows' own restore), so new runs start on
it by default."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.commands import steps as step_commands
from api.commands import templates as template_commands
from api.commands.rights import READERS, allow
from api.deps import Principal
from api.errors import ApiError
from core.experiments import store
from core.experiments.contracts import ExperimentAnalysis, ExperimentCreate, ExperimentPublic, PromoteCreate
from core.platform.settings import Settings
from core.process import templates
from core.steps import store as step_store
from core.steps.catalogue import Catalogue


async def _check_step_versions(conn: AsyncConnection, body: ExperimentCreate) -> None:
    for variant in body.variants:
        stored, refused = await step_store.runnable(conn, body.subject, variant.version)
        if stored is None:
            raise ApiError(422, "validation_error", f"variant {variant.name}: {refused}")
        if refused is not None:
            raise ApiError(409, "workflow_disabled", refused)


async def create(body: ExperimentCreate, principal: Principal, engine: AsyncEngine) -> ExperimentPublic:
    allow(principal, doing="start experiments")
    async with engine.begin() as conn:
        if body.subject_kind == "steps":
            await _check_step_versions(conn, body)
        for variant in body.variants if body.subject_kind == "process" else []:
            found = await templates.get_by_code(conn, body.subject, variant.version)
            if found is None:
                raise ApiError(
                    422,
                    "validation_error",
                    f"variant {variant.name}: template {body.subject} has no version {variant.version}",
                )
            if not found.active_workflow_flag:
                raise ApiError(
                    422, "validation_error", f"variant {variant.name}: version {variant.version} is deactivated"
                )
        try:
            return await store.create(conn, body, principal.name)
        except store.AlreadyRunning as exc:
            raise ApiError(409, "experiment_running", str(exc)) from exc


async def _found(conn: AsyncConnection, experiment_id: uuid.UUID) -> ExperimentPublic:
    found = await store.get(conn, experiment_id)
    if found is None:
        raise ApiError(404, "not_found", f"no experiment {experiment_id}")
    return found


async def get(experiment_id: uuid.UUID, principal: Principal, engine: AsyncEngine) -> ExperimentAnalysis:
    """The experiment with its figures per variant and each variant against the control."""
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.analysis(conn, await _found(conn, experiment_id))


async def listing(subject: str | None, principal: Principal, engine: AsyncEngine, limit: int) -> list[ExperimentPublic]:
    allow(principal, *READERS)
    async with engine.connect() as conn:
        return await store.listing(conn, subject, limit)


async def promote(
    experiment_id: uuid.UUID,
    body: PromoteCreate,
    principal: Principal,
    engine: AsyncEngine,
    catalogue: Catalogue,
    settings: Settings,
) -> ExperimentPublic:
    """Make the variant the default (its version the newest) and end the experiment."""
    allow(principal, doing="promote variants")
    steps = False
    async with engine.connect() as conn:
        experiment = await _found(conn, experiment_id)
        steps = experiment.subject_kind == "steps"
        if steps:
            newest = await step_store.latest_version(conn, experiment.subject)
        else:
            latest = await templates.latest_version(conn, experiment.subject)
            newest = latest.version if latest else None
    if experiment.status != "running":
        raise ApiError(409, "experiment_ended", f"experiment {experiment_id} has ended")
    chosen = next((v for v in experiment.variants if v.name == body.variant), None)
    if chosen is None:
        names = ", ".join(v.name for v in experiment.variants)
        raise ApiError(422, "validation_error", f"no variant '{body.variant}'; the variants are {names}")
    if newest != chosen.version and steps:
        await step_commands.restore(experiment.subject, chosen.version, principal, engine, catalogue, settings)
    elif newest != chosen.version:
        await template_commands.restore(experiment.subject, chosen.version, principal, engine)
    async with engine.begin() as conn:
        try:
            return await store.end(conn, experiment, principal.name, chosen.name)
        except store.AlreadyRunning as exc:
            raise ApiError(409, "experiment_ended", str(exc)) from exc


async def end(experiment_id: uuid.UUID, principal: Principal, engine: AsyncEngine) -> ExperimentPublic:
    """End the experiment without promoting: new instances start on the newest version again."""
    allow(principal, doing="end experiments")
    async with engine.begin() as conn:
        experiment = await _found(conn, experiment_id)
        try:
            return await store.end(conn, experiment, principal.name, None)
        except store.AlreadyRunning as exc:
            raise ApiError(409, "experiment_ended", str(exc)) from exc
