"""How an execution starts, the same from the API and from a rule's ``start_workflow`` action: the
execution's id (derived from an idempotency key when there is one), its workflow id, the interpreter's
input carrying the stored version (so a later PUT does not change a running execution), and the
pending row an accepted execution has before its workflow runs."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.common import SearchAttributePair

from core.experiments.contracts import VariantArm
from core.platform import search_attributes as sa
from core.platform.ids import derived_id
from core.platform.settings import Settings
from core.steps.contracts import BeginInput, RunInput, execution_workflow_id
from core.steps.contracts import WorkflowPublic as StoredWorkflow

INTERPRETER = "StepWorkflow"  # the interpreter's workflow type name


def execution_id_for(*key: object) -> str:
    """A fixed id for a keyed start (a retried request, a rule's event), a new one otherwise."""
    return str(derived_id("step-execution", *key)) if key else str(uuid.uuid4())


def run_input(
    stored: StoredWorkflow,
    execution_id: str,
    settings: Settings,
    *,
    input: dict[str, Any],
    context: dict[str, Any],
    trigger: dict[str, Any],
    created_by: str | None,
    parent_execution_id: str | None = None,
    depth: int = 0,
    variant: VariantArm | None = None,
) -> RunInput:
    return RunInput(
        execution_id=execution_id,
        workflow=stored.name,
        version=stored.version,
        definition=stored.definition,
        input=input,
        context=context,
        trigger=trigger,
        created_by=created_by,
        parent_execution_id=parent_execution_id,
        depth=depth,
        max_depth=settings.steps_max_depth,
        max_spawned=settings.steps_max_spawned,
        history_limit=settings.steps_history_limit,
        search_attributes=settings.search_attributes,
        variant=variant,
    )


def begin_input(run: RunInput) -> BeginInput:
    return BeginInput(
        execution_id=run.execution_id,
        workflow=run.workflow,
        version=run.version,
        temporal_workflow_id=execution_workflow_id(run.execution_id),
        input=run.input,
        context=run.context,
        trigger=run.trigger,
        created_by=run.created_by,
        parent_execution_id=run.parent_execution_id,
        reused_from=run.resume.reused_from if run.resume else None,
        reused_paths=run.resume.reused_paths if run.resume else [],
        variant=run.variant,
    )


def routing_key(execution_id: str, input: dict[str, Any], context: dict[str, Any], trigger: dict[str, Any]) -> str:
    """What an experiment routes a new run by: the entity it is about (a rule's event's entity, or an
    ``entity_id`` in its context or input), so one customer keeps its variant; else the run itself."""
    for source in (trigger, context, input):
        entity = source.get("entity_id")
        if isinstance(entity, str) and entity:
            return entity
    return execution_id


def execution_attributes(workflows: list[str]) -> list[SearchAttributePair[Any]]:
    """What makes an execution findable in the Temporal UI: its workflow's name (with its parents'), its
    status (the current step is set as it walks)."""
    return [SearchAttributePair(sa.STEP_WORKFLOW, workflows), SearchAttributePair(sa.EXECUTION_STATUS, "running")]


def summary(run: RunInput) -> str:
    return f"{run.workflow} v{run.version}"
