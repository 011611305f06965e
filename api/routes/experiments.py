"""Experiments: A/B variants of a process template or a step workflow (issue 26, decision 0022)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.catalogue import CatalogueDep
from api.commands import experiments as commands
from api.deps import Admin, EngineDep, Reader, SettingsDep
from core.experiments.contracts import ExperimentAnalysis, ExperimentCreate, ExperimentPublic, PromoteCreate

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])


@router.post("", response_model=ExperimentPublic, status_code=201)
async def start_experiment(body: ExperimentCreate, engine: EngineDep, principal: Admin) -> ExperimentPublic:
    """Run two or more versions of a template (``subject_kind`` process) or a step workflow (``steps``)
    as variants with weights (admins). New runs that name no version are routed by weight, by their root
    entity (a customer keeps its variant; a step execution's ``entity_id`` in its context or input, or its
    rule event's entity); the variant is recorded on the run. With ``guardrail``, routing to a variant
    stops by itself once its success rate is significantly worse. 409 when the subject has a running
    experiment."""
    return await commands.create(body, principal, engine)


@router.get("", response_model=list[ExperimentPublic])
async def list_experiments(
    engine: EngineDep,
    principal: Reader,
    subject: Annotated[str | None, Query(max_length=100, description="A template code or step workflow name")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ExperimentPublic]:
    """Experiments, newest first."""
    return await commands.listing(subject, principal, engine, limit)


@router.get("/{experiment_id}", response_model=ExperimentAnalysis)
async def get_experiment(experiment_id: uuid.UUID, engine: EngineDep, principal: Reader) -> ExperimentAnalysis:
    """The experiment, its figures per variant (started, finished, success rate, duration, time per
    state) and each variant against the first: the difference in success rate with its interval and
    two-proportion z-test, the difference in mean duration with its interval; nothing is called before
    both sides have ``min_sample`` finished instances."""
    return await commands.get(experiment_id, principal, engine)


@router.post("/{experiment_id}/promote", response_model=ExperimentPublic)
async def promote_variant(
    experiment_id: uuid.UUID,
    body: PromoteCreate,
    engine: EngineDep,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    principal: Admin,
) -> ExperimentPublic:
    """Make the variant's version the default (of the template or step workflow) and end the experiment
    (admins)."""
    return await commands.promote(experiment_id, body, principal, engine, catalogue, settings)


@router.post("/{experiment_id}/end", response_model=ExperimentPublic)
async def end_experiment(experiment_id: uuid.UUID, engine: EngineDep, principal: Admin) -> ExperimentPublic:
    """End the experiment without promoting (admins)."""
    return await commands.end(experiment_id, principal, engine)
