"""Recommendations for a step workflow (seed 004's optimizer, issue 26 §4), from its definition and its
recorded runs:

- **run in parallel**: consecutive top-level steps none of which reads what an earlier one of them
  writes (its name or ``assign`` variable, or a nested step's), so they could be one ``parallel`` step;
  the time a run saves is the sum of their mean recorded durations less the longest of them. What the
  definition cannot show, a tool that relies on an earlier tool's side effect (an entity it wrote), is
  for the author to judge, and the recommendation says so. A definition that is a DAG
  (``dependencies``) already runs what it can at once and gets none.
- **slowest steps**: the top-level steps taking the largest share of a run's step time.
- **failing steps**: the steps that fail most, with their most frequent errors.

A step "reads" a variable when any text of it (parameters, ``if`` and other conditions, nested steps)
holds the variable's name as a word: a superset of the real references, so a recommendation to
parallelise is never made for steps that do depend on each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.platform.recommendations import Recommendation
from core.steps.definition import Step, StepWorkflowDefinition, walk

TOP = 3  # slowest and failing steps listed
TOP_ERRORS = 3


@dataclass(frozen=True)
class StepTimes:
    """Recorded figures of one top-level step over the chosen runs."""

    runs: int  # completed or failed runs with a start time
    mean_seconds: float | None
    p95_seconds: float | None
    failed: int
    errors: list[tuple[str, int]]  # the most frequent errors (first 200 characters) and their counts


def writes(step: Step) -> set[str]:
    """The variables a step sets: its own and those of every step nested in it."""
    return {inner.variable for inner in walk([step])} | {inner.name for inner in walk([step])}


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def reads(step: Step, names: set[str]) -> bool:
    """Whether any text of ``step`` (all but its own name) mentions one of ``names`` as a word."""
    if not names:
        return False
    pattern = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(re.escape(n) for n in sorted(names)) + r")(?![A-Za-z0-9_])")
    body = step.model_dump(by_alias=True, exclude_none=True, exclude={"name"})
    return any(pattern.search(piece) for piece in _texts(body))


def independent_runs(definition: StepWorkflowDefinition) -> list[list[Step]]:
    """Maximal runs of two or more consecutive top-level steps, each reading nothing an earlier one of
    the run writes. None for a DAG (its steps already run as soon as what they depend on is done)."""
    if any(step.dependencies is not None for step in definition.steps):
        return []
    found: list[list[Step]] = []
    window: list[Step] = []
    written: set[str] = set()
    for step in definition.steps:
        if window and not reads(step, written):
            window.append(step)
            written |= writes(step)
            continue
        if len(window) >= 2:
            found.append(window)
        window, written = [step], writes(step)
    if len(window) >= 2:
        found.append(window)
    return found


def _seconds(value: float | None) -> str:
    if value is None:
        return "no recorded time"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def recommend(definition: StepWorkflowDefinition, times: dict[str, StepTimes]) -> list[Recommendation]:
    """The recommendations from a definition and the recorded figures of its top-level steps."""
    out: list[Recommendation] = []
    for window in independent_runs(definition):
        names = [step.name for step in window]
        means: dict[str, float] = {}
        for n in names:
            mean = times[n].mean_seconds if n in times else None
            if mean is not None:
                means[n] = mean
        saved = round(sum(means.values()) - max(means.values()), 3) if len(means) >= 2 else None
        missing = [n for n in names if n not in means]
        detail = f"None of {', '.join(names)} reads what another of them writes"
        if saved is not None:
            detail += (
                f"; their mean recorded times add up to {_seconds(sum(means.values()))} "
                f"where the longest is {_seconds(max(means.values()))}"
            )
        if missing:
            detail += f" ({', '.join(missing)}: no recorded time yet)"
        detail += ". Check that none relies on another's side effect (an entity it writes) before moving them."
        out.append(
            Recommendation(
                kind="run_in_parallel",
                subjects=names,
                title=f"Run {', '.join(names)} in parallel"
                + (f": about {_seconds(saved)} saved per run" if saved else ""),
                detail=detail,
                saved_seconds=saved,
                figures={"mean_seconds": {n: round(v, 3) for n, v in means.items()}},
            )
        )
    timed = {n: t for n, t in times.items() if t.mean_seconds is not None and t.runs > 0}
    total = sum(t.mean_seconds or 0.0 for t in timed.values())
    for name, t in sorted(timed.items(), key=lambda item: -(item[1].mean_seconds or 0.0))[:TOP]:
        share = (t.mean_seconds or 0.0) / total if total else 0.0
        out.append(
            Recommendation(
                kind="slowest_step",
                subjects=[name],
                title=f"{name} takes {share:.0%} of a run's step time",
                detail=(
                    f"Mean {_seconds(t.mean_seconds)}, 95th percentile {_seconds(t.p95_seconds)} over {t.runs} runs."
                ),
                figures={
                    "runs": t.runs,
                    "mean_seconds": round(t.mean_seconds or 0.0, 3),
                    "p95_seconds": round(t.p95_seconds, 3) if t.p95_seconds is not None else None,
                    "share": round(share, 4),
                },
            )
        )
    failing = [(n, t) for n, t in times.items() if t.failed > 0]
    for name, t in sorted(failing, key=lambda item: (-item[1].failed, item[0]))[:TOP]:
        rate = t.failed / t.runs if t.runs else 1.0
        top = (
            "; ".join(f"{'once' if count == 1 else f'{count} times'}: {error}" for error, count in t.errors)
            or "no error text recorded"
        )
        out.append(
            Recommendation(
                kind="failing_step",
                subjects=[name],
                title=f"{name} failed {t.failed} of {t.runs} times ({rate:.0%})",
                detail=f"Most frequent errors: {top}.",
                figures={
                    "runs": t.runs,
                    "failed": t.failed,
                    "failure_rate": round(rate, 4),
                    "errors": [{"error": e, "count": c} for e, c in t.errors],
                },
            )
        )
    return out


# Top-level steps (path = name) of the chosen executions: runs, mean and p95 seconds, failures.
_TIMES = """
    SELECT s.name,
           count(*) FILTER (WHERE s.status IN ('completed', 'failed')) AS runs,
           avg(extract(epoch FROM s.finished_ts - s.started_ts))
               FILTER (WHERE s.status = 'completed' AND s.started_ts IS NOT NULL) AS mean,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM s.finished_ts - s.started_ts))
               FILTER (WHERE s.status = 'completed' AND s.started_ts IS NOT NULL) AS p95,
           count(*) FILTER (WHERE s.status = 'failed') AS failed
    FROM app.workflow_steps s JOIN app.workflow_executions x ON x.id = s.execution_id
    WHERE x.workflow_name = :name AND x.workflow_version = :version AND x.created_ts >= :since
      AND s.path = s.name
    GROUP BY s.name
"""

_ERRORS = """
    SELECT name, error, n FROM (
        SELECT s.name, left(coalesce(s.error, ''), 200) AS error, count(*) AS n,
               row_number() OVER (PARTITION BY s.name ORDER BY count(*) DESC, left(coalesce(s.error, ''), 200)) AS r
        FROM app.workflow_steps s JOIN app.workflow_executions x ON x.id = s.execution_id
        WHERE x.workflow_name = :name AND x.workflow_version = :version AND x.created_ts >= :since
          AND s.path = s.name AND s.status = 'failed'
        GROUP BY s.name, left(coalesce(s.error, ''), 200)
    ) ranked WHERE r <= :top
    ORDER BY name, n DESC, error
"""

_FINISHED = """
    SELECT count(*) FROM app.workflow_executions
    WHERE workflow_name = :name AND workflow_version = :version AND created_ts >= :since
      AND status IN ('completed', 'failed', 'cancelled', 'compensated')
"""


async def step_times(conn: AsyncConnection, params: dict[str, Any]) -> tuple[dict[str, StepTimes], int]:
    """The recorded figures per top-level step, and the number of finished executions they come from.
    ``params``: name, version, since."""
    errors: dict[str, list[tuple[str, int]]] = {}
    for row in await conn.execute(text(_ERRORS), params | {"top": TOP_ERRORS}):
        errors.setdefault(row.name, []).append((row.error, int(row.n)))
    times = {
        row.name: StepTimes(
            runs=int(row.runs),
            mean_seconds=float(row.mean) if row.mean is not None else None,
            p95_seconds=float(row.p95) if row.p95 is not None else None,
            failed=int(row.failed),
            errors=errors.get(row.name, []),
        )
        for row in await conn.execute(text(_TIMES), params)
    }
    finished = int((await conn.execute(text(_FINISHED), params)).scalar() or 0)
    return times, finished
