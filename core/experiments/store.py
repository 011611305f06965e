"""Experiments in the database: create, read, route a new run, the figures per variant (computed at
query time over the runs, decision 0012: process instances' projections, or step executions' rows),
the guardrail run in the transaction that records an experiment run's finish, and the end (promoted or
not). Every change is an experiment event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.experiments import statistics
from core.experiments.contracts import (
    Comparison,
    ExperimentAnalysis,
    ExperimentCreate,
    ExperimentPublic,
    SubjectKind,
    Variant,
    VariantFigures,
)
from core.experiments.routing import choose
from core.experiments.tables import ExperimentEvent, StoredExperiment
from core.notifications.contracts import NotificationSpec
from core.notifications.store import insert_notifications

GUARDRAIL_ACTOR = "system:guardrail"


class AlreadyRunning(Exception):
    """The subject has a running experiment already."""


def _public(row: Any) -> ExperimentPublic:
    return ExperimentPublic.model_validate(row, from_attributes=True)


async def _event(
    conn: AsyncConnection, experiment: uuid.UUID, kind: str, actor: str, variant: str | None = None, **detail: Any
) -> None:
    await conn.execute(
        insert(ExperimentEvent).values(experiment_id=experiment, kind=kind, variant=variant, detail=detail, actor=actor)
    )


async def create(conn: AsyncConnection, body: ExperimentCreate, actor: str) -> ExperimentPublic:
    variants = [Variant(name=v.name, version=v.version, weight=v.weight, routing=True) for v in body.variants]
    experiment = uuid.uuid4()
    try:
        async with conn.begin_nested():
            row = (
                await conn.execute(
                    insert(StoredExperiment)
                    .values(
                        id=experiment,
                        subject_kind=body.subject_kind,
                        subject=body.subject,
                        status="running",
                        variants=[v.model_dump(mode="json") for v in variants],
                        min_sample=body.min_sample,
                        alpha=body.alpha,
                        guardrail=body.guardrail,
                        created_by=actor,
                    )
                    .returning(StoredExperiment.__table__)
                )
            ).one()
    except IntegrityError as exc:
        what = "template" if body.subject_kind == "process" else "step workflow"
        raise AlreadyRunning(f"{what} {body.subject} has a running experiment; end it first") from exc
    await _event(conn, experiment, "started", actor, variants=[v.model_dump(mode="json") for v in variants])
    return _public(row)


async def get(conn: AsyncConnection, experiment: uuid.UUID, *, lock: bool = False) -> ExperimentPublic | None:
    stmt = select(StoredExperiment.__table__).where(StoredExperiment.id == experiment)
    row = (await conn.execute(stmt.with_for_update() if lock else stmt)).first()
    return _public(row) if row else None


async def listing(conn: AsyncConnection, subject: str | None, limit: int) -> list[ExperimentPublic]:
    stmt = select(StoredExperiment.__table__).order_by(StoredExperiment.created_ts.desc()).limit(limit)
    if subject:
        stmt = stmt.where(StoredExperiment.subject == subject)
    return [_public(r) for r in (await conn.execute(stmt)).all()]


async def running_for(conn: AsyncConnection, subject: str, kind: SubjectKind = "process") -> ExperimentPublic | None:
    row = (
        await conn.execute(
            select(StoredExperiment.__table__).where(
                StoredExperiment.subject_kind == kind,
                StoredExperiment.subject == subject,
                StoredExperiment.status == "running",
            )
        )
    ).first()
    return _public(row) if row else None


def route(experiment: ExperimentPublic, key: str) -> Variant:
    """The variant a new run keyed ``key`` goes to, among those still routing."""
    live = [v for v in experiment.variants if v.routing]
    name = choose(key, [(v.name, v.weight) for v in live])
    return next(v for v in live if v.name == name)


_FIGURES = """
    SELECT variant,
           count(*) AS started,
           count(*) FILTER (WHERE workflow_status <> 'active' AND completed_ts IS NOT NULL) AS finished,
           count(*) FILTER (WHERE success_flag) AS succeeded,
           avg(extract(epoch FROM completed_ts - started_ts)) FILTER (WHERE completed_ts IS NOT NULL) AS mean,
           var_samp(extract(epoch FROM completed_ts - started_ts)) FILTER (WHERE completed_ts IS NOT NULL) AS variance
    FROM app.d_industry_workflow_graph_data
    WHERE experiment_id = :experiment
    GROUP BY variant
"""

# A step workflow's runs: finished is any end (completed, failed, cancelled, compensated); success is
# completed; duration from its start (its begin) to its finish.
_STEP_FIGURES = """
    SELECT variant,
           count(*) AS started,
           count(*) FILTER (WHERE finished_ts IS NOT NULL AND status NOT IN ('pending', 'running')) AS finished,
           count(*) FILTER (WHERE status = 'completed') AS succeeded,
           avg(extract(epoch FROM finished_ts - started_ts)) FILTER (WHERE finished_ts IS NOT NULL) AS mean,
           var_samp(extract(epoch FROM finished_ts - started_ts)) FILTER (WHERE finished_ts IS NOT NULL) AS variance
    FROM app.workflow_executions
    WHERE experiment_id = :experiment
    GROUP BY variant
"""

# Time per top-level step of a step workflow's runs (the recorded steps' own durations).
_PER_STEP = """
    SELECT x.variant, s.path, avg(extract(epoch FROM s.finished_ts - s.started_ts))
    FROM app.workflow_executions x
    JOIN app.workflow_steps s ON s.execution_id = x.id
    WHERE x.experiment_id = :experiment AND s.started_ts IS NOT NULL AND s.path = s.name
    GROUP BY x.variant, s.path
"""

_PER_STATE = """
    WITH visits AS (
        SELECT d.variant, e.to_state_id,
               extract(epoch FROM coalesce(lead(e.event_ts) OVER w, d.completed_ts) - e.event_ts) AS seconds
        FROM app.d_industry_workflow_graph_data d
        JOIN app.f_industry_workflow_events e ON e.workflow_data_id = d.id AND e.event_type = 'state_transition'
        WHERE d.experiment_id = :experiment
        WINDOW w AS (PARTITION BY e.workflow_data_id ORDER BY e.seq)
    )
    SELECT variant, to_state_id, avg(seconds) FROM visits WHERE seconds IS NOT NULL GROUP BY variant, to_state_id
"""


async def figures(conn: AsyncConnection, experiment: ExperimentPublic, *, per_state: bool) -> list[VariantFigures]:
    steps = experiment.subject_kind == "steps"
    query = _STEP_FIGURES if steps else _FIGURES
    rows = {r.variant: r for r in (await conn.execute(text(query), {"experiment": experiment.id})).all()}
    states: dict[str, dict[str, float]] = {}
    if per_state and steps:
        for variant, path, seconds in (await conn.execute(text(_PER_STEP), {"experiment": experiment.id})).all():
            states.setdefault(variant, {})[path] = round(float(seconds), 3)
    elif per_state:
        names = await _state_names(conn, experiment)
        for variant, state_id, seconds in (await conn.execute(text(_PER_STATE), {"experiment": experiment.id})).all():
            label = names.get((variant, state_id), str(state_id))
            states.setdefault(variant, {})[label] = round(float(seconds), 1)
    out = []
    for v in experiment.variants:
        r = rows.get(v.name)
        finished = int(r.finished) if r else 0
        succeeded = int(r.succeeded) if r else 0
        out.append(
            VariantFigures(
                name=v.name,
                version=v.version,
                routing=v.routing,
                started=int(r.started) if r else 0,
                finished=finished,
                succeeded=succeeded,
                success_rate=round(succeeded / finished, 4) if finished else None,
                duration_mean_seconds=float(r.mean) if r and r.mean is not None else None,
                duration_sd_seconds=float(r.variance) ** 0.5 if r and r.variance is not None else None,
                seconds_per_state=states.get(v.name, {}),
            )
        )
    return out


async def _state_names(conn: AsyncConnection, experiment: ExperimentPublic) -> dict[tuple[str, int], str]:
    names: dict[tuple[str, int], str] = {}
    for v in experiment.variants:
        graph = (
            await conn.execute(
                text("SELECT workflow_graph FROM app.d_industry_workflow_graph_head WHERE code = :c AND version = :v"),
                {"c": experiment.subject, "v": v.version},
            )
        ).scalar()
        for state in (graph or {}).get("states", []):
            names[(v.name, state["id"])] = state["name"]
    return names


def compare(experiment: ExperimentPublic, figures_: list[VariantFigures]) -> list[Comparison]:
    """Each variant against the first (the control)."""
    control = figures_[0]
    out = []
    for other in figures_[1:]:
        enough = min(control.finished, other.finished) >= experiment.min_sample
        rate = statistics.proportions(
            control.succeeded, control.finished, other.succeeded, other.finished, alpha=experiment.alpha
        )
        duration = None
        if control.duration_mean_seconds is not None and other.duration_mean_seconds is not None:
            duration = statistics.means(
                control.duration_mean_seconds,
                (control.duration_sd_seconds or 0.0) ** 2,
                control.finished,
                other.duration_mean_seconds,
                (other.duration_sd_seconds or 0.0) ** 2,
                other.finished,
                alpha=experiment.alpha,
            )
        if not enough:
            verdict = (
                f"not enough data: {min(control.finished, other.finished)} of {experiment.min_sample} "
                "finished runs on the smaller side"
            )
        elif rate is not None and rate.p_value < experiment.alpha:
            better = "higher" if rate.difference > 0 else "lower"
            verdict = f"{other.name} has a significantly {better} success rate ({rate.difference * 100:+.1f} points)"
        else:
            verdict = "no significant difference in success rate"
        out.append(
            Comparison(
                variant=other.name,
                against=control.name,
                enough_data=enough,
                success_rate=rate,
                duration_seconds=duration,
                verdict=verdict,
            )
        )
    return out


async def analysis(conn: AsyncConnection, experiment: ExperimentPublic) -> ExperimentAnalysis:
    found = await figures(conn, experiment, per_state=True)
    return ExperimentAnalysis(experiment=experiment, variants=found, comparisons=compare(experiment, found))


async def _save_variants(conn: AsyncConnection, experiment: uuid.UUID, variants: list[Variant]) -> None:
    await conn.execute(
        update(StoredExperiment)
        .where(StoredExperiment.id == experiment)
        .values(variants=[v.model_dump(mode="json") for v in variants])
    )


async def guardrail(conn: AsyncConnection, experiment_id: uuid.UUID) -> str | None:
    """Stop routing to a variant whose success rate is significantly worse than the best other variant
    (both past the minimum sample, one-sided at alpha), never the last one routing; record it and tell
    the experiment's creator and the admins. Runs in the transaction that records a finish; the row
    lock serialises concurrent finishes. The stopped variant's name, or None."""
    experiment = await get(conn, experiment_id, lock=True)
    if experiment is None or experiment.status != "running" or not experiment.guardrail:
        return None
    found = {f.name: f for f in await figures(conn, experiment, per_state=False)}
    live = [v for v in experiment.variants if v.routing]
    if len(live) < 2:
        return None
    ready = [found[v.name] for v in live if found[v.name].finished >= experiment.min_sample]
    if len(ready) < 2:
        return None
    best = max(ready, key=lambda f: f.success_rate or 0.0)
    for worst in sorted(ready, key=lambda f: f.success_rate or 0.0):
        if worst.name == best.name:
            break
        rate = statistics.proportions(
            best.succeeded, best.finished, worst.succeeded, worst.finished, alpha=2 * experiment.alpha
        )
        # One-sided: worse, and past the alpha quantile (the two-sided p halved).
        if rate is not None and rate.difference < 0 and rate.p_value / 2 < experiment.alpha:
            now = datetime.now(UTC)
            reason = (
                f"success rate {worst.success_rate:.1%} against {best.name}'s {best.success_rate:.1%} "
                f"(difference {rate.difference * 100:+.1f} points, one-sided p = {rate.p_value / 2:.4f}, "
                f"{worst.finished} and {best.finished} finished)"
            )
            variants = [
                v.model_copy(update={"routing": False, "stopped_reason": reason, "stopped_ts": now})
                if v.name == worst.name
                else v
                for v in experiment.variants
            ]
            await _save_variants(conn, experiment.id, variants)
            await _event(conn, experiment.id, "variant_stopped", GUARDRAIL_ACTOR, worst.name, reason=reason)
            subject = f"Experiment on {experiment.subject}: routing to {worst.name} stopped"
            body = f"The guardrail stopped routing new runs to variant {worst.name}: {reason}."
            await insert_notifications(
                conn,
                [
                    NotificationSpec(recipient=who, template="experiment_guardrail", subject=subject, body=body)
                    for who in sorted({experiment.created_by, "admin"})
                ],
                dedupe_prefix=f"experiment:{experiment.id}:{worst.name}",
                source=f"experiment:{experiment.id}",
                entity_id=None,
                ts=now,
            )
            return worst.name
    return None


async def end(
    conn: AsyncConnection, experiment: ExperimentPublic, actor: str, promoted: str | None
) -> ExperimentPublic:
    now = datetime.now(UTC)
    variants = [v.model_copy(update={"routing": False}) for v in experiment.variants]
    row = (
        await conn.execute(
            update(StoredExperiment)
            .where(StoredExperiment.id == experiment.id, StoredExperiment.status == "running")
            .values(
                status="ended",
                ended_ts=now,
                ended_by=actor,
                promoted=promoted,
                variants=[v.model_dump(mode="json") for v in variants],
            )
            .returning(StoredExperiment.__table__)
        )
    ).first()
    if row is None:
        raise AlreadyRunning("the experiment has ended already")
    await _event(conn, experiment.id, "promoted" if promoted else "ended", actor, promoted)
    return _public(row)
