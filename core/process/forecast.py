"""Forecasts per running instance (issue 26, decision 0021): the remaining time to a terminal state (p50,
p90), the probability of ending in a success state, and, with a deadline, the probability of meeting it.

The model is a semi-Markov chain over the template version's DAG, learned from the recorded state visits
(``Visit``): per state, where instances went next (branch probabilities) and how long they stayed
(a Kaplan-Meier estimate, so that visits still open count as "at least this long" instead of being
dropped or taken as finished). Both are conditioned on the time already spent in the current state:
branching over the visits that lasted longer than that, the stay as what is left of it.

Time is a grid of ``BINS`` equal steps up to a horizon long enough for the longest path; a distribution
is an array of probabilities over it, and "this, then that" is a convolution (numpy's FFT). The time to
absorption from each state is computed once per model, from the terminal states backwards; an
instance's forecast is its residual stay convolved with the mixture of its next states' times.

Where a state has fewer than ``min_visits`` recorded visits the model leans on the template: the
branch counts are shrunk towards equal branching (with the weight of the visits missing), the stay is
the author's ``avg_duration_days``, and the forecast says it is uncertain and why.

Pure: no I/O (the visits come from core/process/forecast_data.py), so the backtest, the API and the
watch run the same code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from core.process.contracts import StateNode, WorkflowGraph

DAY = 86_400.0
BINS = 2048
CANCELLED = -1  # a visit ended by cancelling the instance: an outcome, never a success
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Visit:
    """One stay of an instance in a state: how long (seconds), and where it went next; ``next_state``
    None means the stay is still open at the time of the model (censored)."""

    state_id: int
    seconds: float
    next_state: int | None


OPEN = -2  # in ``Stays.next_state``: the stay is still open (censored)


@dataclass(frozen=True)
class Stays:
    """The recorded stays in one state as arrays (what the database hands over, without an object per
    visit): their lengths in seconds, and where each went next (``OPEN``: still open)."""

    seconds: Array
    next_state: NDArray[np.int64]


def stays_of(visits: Iterable[Visit]) -> dict[int, Stays]:
    """Visits grouped into arrays per state."""
    by_state: dict[int, list[Visit]] = defaultdict(list)
    for visit in visits:
        by_state[visit.state_id].append(visit)
    return {
        state: Stays(
            seconds=np.asarray([v.seconds for v in mine], dtype=np.float64),
            next_state=np.asarray([OPEN if v.next_state is None else v.next_state for v in mine], dtype=np.int64),
        )
        for state, mine in by_state.items()
    }


class Forecast(BaseModel):
    """What the model says about one running instance."""

    instance_id: str | None = None
    state_id: int
    seconds_in_state: float
    remaining_p50_seconds: float
    remaining_p90_seconds: float
    success_probability: float = Field(ge=0, le=1)
    deadline: datetime | None = Field(default=None, description="The template's SLA from the instance's start")
    on_time_probability: float | None = Field(default=None, description="Chance to finish by the deadline")
    risk: float = Field(description="1 - on_time_probability with a deadline, else 1 - success_probability")
    expected_finish: datetime | None = Field(default=None, description="now + remaining p50")
    uncertain: bool
    reasons: list[str] = Field(default_factory=list, description="Why the forecast is uncertain")


@dataclass
class StateModel:
    node: StateNode
    visits_left: int  # completed stays the branching and the stay are learned from
    branches: dict[int, float]  # next state (or CANCELLED) -> probability, unconditioned
    durations: Array  # sorted completed and censored stay lengths (seconds) ...
    ended: NDArray[np.bool_]  # ... and whether each one ended (False: still open)
    next_of: NDArray[np.int64]  # next state of each stay (OPEN for an open one)
    stay: Array  # the stay's distribution on the grid (Kaplan-Meier, or the fallback)
    km_times: Array  # Kaplan-Meier: the distinct stay lengths with mass ...
    km_mass: Array  # ... and their probabilities (sums to 1)
    thin: str | None = None  # why this state's figures are uncertain


@dataclass
class Model:
    """A template version's learned chain; ``forecast`` answers for one instance."""

    graph: WorkflowGraph
    step: float  # seconds per grid bin
    states: dict[int, StateModel]
    to_end: dict[int, Array] = field(default_factory=dict)  # time from entering a state to a terminal one
    success: dict[int, float] = field(default_factory=dict)  # P(success) from entering a state
    min_visits: int = 30
    sla_seconds: float | None = None
    _cache: dict[tuple[int, int], tuple[Array, float, list[str]]] = field(default_factory=dict)

    def reachable_thin(self, state_id: int) -> list[str]:
        """Why forecasts from this state are uncertain: thin states on the way to the end."""
        seen: set[int] = set()
        reasons: list[str] = []
        pending = [state_id]
        while pending:
            current = pending.pop()
            if current in seen or current not in self.states:
                continue
            seen.add(current)
            state = self.states[current]
            if state.thin:
                reasons.append(state.thin)
            pending.extend(j for j in state.node.child_ids)
        return reasons

    def remaining(self, state_id: int, seconds_in_state: float) -> tuple[Array, float, list[str]]:
        """The remaining time's distribution on the grid, P(success), and the uncertainty reasons, for
        an instance ``seconds_in_state`` into ``state_id``. Shared by instances in the same grid bin."""
        key = (state_id, int(seconds_in_state // self.step))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        state = self.states[state_id]
        reasons = self.reachable_thin(state_id)
        residual, overdue = _residual(state, seconds_in_state, self.step)
        if overdue:
            reasons.append(f"'{state.node.name}': in the state longer than any recorded stay")
        branches = _branches_after(state, seconds_in_state, self.min_visits)
        mixture = np.zeros(BINS)
        success = 0.0
        for target, p in branches.items():
            if target == CANCELLED or target not in self.to_end:
                mixture[0] += p
                continue
            mixture += p * self.to_end[target]
            success += p * self.success[target]
        result = (_convolve(residual, mixture), success, reasons)
        if len(self._cache) < 100_000:
            self._cache[key] = result
        return result

    def forecast(
        self,
        state_id: int,
        seconds_in_state: float,
        *,
        now: datetime | None = None,
        started: datetime | None = None,
        instance_id: str | None = None,
    ) -> Forecast:
        now = now or datetime.now(UTC)
        node = self.states.get(state_id)
        if node is None or node.node.terminal_flag:
            raise ValueError(f"state {state_id} is not a running state of this template")
        distribution, success, reasons = self.remaining(state_id, max(seconds_in_state, 0.0))
        cumulative = np.cumsum(distribution)
        p50 = quantile(cumulative, 0.5) * self.step
        p90 = quantile(cumulative, 0.9) * self.step
        deadline = started + timedelta(seconds=self.sla_seconds) if started and self.sla_seconds else None
        on_time = None
        if deadline is not None:
            left = (deadline - now).total_seconds()
            on_time = 0.0 if left < 0 else float(cumulative[min(int(left // self.step), BINS - 1)])
        risk = 1 - on_time if on_time is not None else 1 - success
        return Forecast(
            instance_id=instance_id,
            state_id=state_id,
            seconds_in_state=seconds_in_state,
            remaining_p50_seconds=round(p50, 1),
            remaining_p90_seconds=round(p90, 1),
            success_probability=round(min(max(success, 0.0), 1.0), 4),
            deadline=deadline,
            on_time_probability=round(min(max(on_time, 0.0), 1.0), 4) if on_time is not None else None,
            risk=round(min(max(risk, 0.0), 1.0), 4),
            expected_finish=now + timedelta(seconds=p50),
            uncertain=bool(reasons),
            reasons=sorted(set(reasons)),
        )


def quantile(cumulative: Array, q: float) -> int:
    """The first bin whose cumulative probability reaches ``q`` (a stay of 0 bins is possible)."""
    index = int(np.searchsorted(cumulative, q - 1e-9, side="left"))
    return min(index, BINS - 1)


def _convolve(a: Array, b: Array) -> Array:
    size = 2 * BINS
    out = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:BINS]
    out = np.clip(out, 0.0, None)
    # What falls past the horizon is kept in the last bin, so the total stays 1.
    out[-1] += max(float(a.sum() * b.sum() - out.sum()), 0.0)
    return out


def _on_grid(times: Array, mass: Array, step: float) -> Array:
    grid = np.zeros(BINS)
    if len(times):
        np.add.at(grid, np.minimum(np.rint(times / step).astype(np.int64), BINS - 1), mass)
    return grid


def kaplan_meier(durations: Array, ended: NDArray[np.bool_]) -> tuple[Array, Array]:
    """The distinct stay lengths at which stays ended and the probability mass at each. Mass left after
    the last ended stay (every longer stay still open) is put at the longest stay seen.

    Vectorised: at each distinct length t the survival drops by the factor 1 - deaths(t) / at_risk(t)
    (at risk: the stays at least t long), so the mass there is the survival before t times the hazard."""
    if not len(durations):
        return np.zeros(0), np.zeros(0)
    order = np.argsort(durations, kind="stable")
    d, e = durations[order], ended[order].astype(np.int64)
    times, first = np.unique(d, return_index=True)
    deaths = np.add.reduceat(e, first)
    at_risk = len(d) - first
    hazard = deaths / at_risk
    survival_after = np.cumprod(1.0 - hazard)
    survival_before = np.concatenate(([1.0], survival_after[:-1]))
    died = deaths > 0
    out_times, out_mass = times[died], (survival_before * hazard)[died]
    left = float(survival_after[-1])
    if left > 1e-12:
        out_times = np.append(out_times, float(d[-1]))
        out_mass = np.append(out_mass, left)
    return out_times.astype(np.float64), out_mass.astype(np.float64)


def _residual(state: StateModel, elapsed: float, step: float) -> tuple[Array, bool]:
    """What is left of the stay after ``elapsed`` seconds in it; True when no recorded stay was longer
    (then the mean recorded stay is assumed to be left)."""
    if state.thin is not None and not len(state.km_times):
        expected = (state.node.avg_duration_days or 0.0) * DAY
        return _on_grid(np.asarray([max(expected - elapsed, 0.0)]), np.asarray([1.0]), step), False
    beyond = state.km_times > elapsed
    mass = state.km_mass[beyond]
    if mass.sum() <= 1e-12:
        mean = float((state.km_times * state.km_mass).sum()) if len(state.km_times) else 0.0
        return _on_grid(np.asarray([mean]), np.asarray([1.0]), step), True
    return _on_grid(state.km_times[beyond] - elapsed, mass / mass.sum(), step), False


def _branches_after(state: StateModel, elapsed: float, min_visits: int) -> dict[int, float]:
    """Where an instance goes next given it has been in the state ``elapsed`` seconds: counted over the
    completed stays longer than that when there are ``min_visits`` of them, else unconditioned."""
    if elapsed > 0 and state.visits_left:
        longer = state.ended & (state.durations > elapsed)
        count = int(longer.sum())
        if count >= min_visits:
            targets, counts = np.unique(state.next_of[longer], return_counts=True)
            return {int(t): int(c) / count for t, c in zip(targets, counts, strict=True)}
    return state.branches


def _branch_estimate(node: StateNode, counts: dict[int, int], min_visits: int) -> dict[int, float]:
    """Counted branch probabilities, shrunk towards equal branching over the state's children with the
    weight of the stays missing below ``min_visits`` (none missing: the counts alone)."""
    total = sum(counts.values())
    prior = max(min_visits - total, 0)
    children = list(node.child_ids) or [CANCELLED]
    weights = {c: float(counts.get(c, 0)) + prior / len(children) for c in children}
    for target, n in counts.items():
        if target not in weights:
            weights[target] = float(n)
    norm = sum(weights.values())
    return {t: w / norm for t, w in weights.items() if w > 0}


def build(
    graph: WorkflowGraph,
    visits: Iterable[Visit] | Mapping[int, Stays],
    *,
    min_visits: int = 30,
    sla_days: float | None = None,
) -> Model:
    """Learn the chain from the visits of one template version (any order), or their stays per state."""
    by_state = visits if isinstance(visits, Mapping) else stays_of(visits)
    none = Stays(seconds=np.zeros(0), next_state=np.zeros(0, dtype=np.int64))
    nodes = {s.id: s for s in graph.states}
    states: dict[int, StateModel] = {}
    longest = 0.0
    for node in graph.states:
        mine = by_state.get(node.id, none)
        durations = np.maximum(mine.seconds, 0.0)
        next_of = mine.next_state
        ended = next_of != OPEN
        targets, tallies = np.unique(next_of[ended], return_counts=True)
        counts: dict[int, int] = {int(t): int(c) for t, c in zip(targets, tallies, strict=True)}
        left = int(ended.sum())
        thin = None
        if not node.terminal_flag and left < min_visits:
            expected = f", expected {node.avg_duration_days:g} days" if node.avg_duration_days else ""
            thin = f"'{node.name}': {left} recorded stays (fewer than {min_visits}{expected})"
        learned = not node.terminal_flag and (left >= min_visits or not node.avg_duration_days)
        km_times, km_mass = kaplan_meier(durations, ended) if learned else (np.zeros(0), np.zeros(0))
        if node.terminal_flag:
            longest_here = 0.0  # an instance stays in a terminal state for ever: no part of a remaining time
        elif len(km_times):
            longest_here = float(np.quantile(km_times, 0.999, weights=km_mass, method="inverted_cdf"))
        else:
            longest_here = (node.avg_duration_days or 0.0) * DAY
        longest += longest_here
        states[node.id] = StateModel(
            node=node,
            visits_left=left,
            branches=_branch_estimate(node, counts, min_visits) if not node.terminal_flag else {},
            durations=durations,
            ended=ended,
            next_of=next_of,
            stay=np.zeros(0),
            km_times=km_times,
            km_mass=km_mass,
            thin=thin,
        )
    # The horizon holds the longest path twice over (a stay past the horizon lands in the last bin).
    step = max(2 * longest, DAY) / BINS
    model = Model(
        graph=graph,
        step=step,
        states=states,
        min_visits=min_visits,
        sla_seconds=sla_days * DAY if sla_days else None,
    )
    for state in states.values():
        if state.node.terminal_flag:
            continue
        if len(state.km_times):
            state.stay = _on_grid(state.km_times, state.km_mass, step)
        else:
            expected_seconds = (state.node.avg_duration_days or 0.0) * DAY
            state.stay = _on_grid(np.asarray([expected_seconds]), np.asarray([1.0]), step)
    # From the terminal states backwards (a template is a DAG; dag.py refuses cycles when it is saved).
    for state_id in _reverse_topological(graph):
        state = states[state_id]
        if state.node.terminal_flag:
            point = np.zeros(BINS)
            point[0] = 1.0
            model.to_end[state_id] = point
            model.success[state_id] = 1.0 if state.node.success else 0.0
            continue
        mixture = np.zeros(BINS)
        success = 0.0
        for target, p in state.branches.items():
            if target == CANCELLED or target not in nodes:
                mixture[0] += p
                continue
            mixture += p * model.to_end.get(target, _point())
            success += p * model.success.get(target, 0.0)
        model.to_end[state_id] = _convolve(state.stay, mixture)
        model.success[state_id] = success
    return model


def _point() -> Array:
    point = np.zeros(BINS)
    point[0] = 1.0
    return point


def _reverse_topological(graph: WorkflowGraph) -> list[int]:
    children = {s.id: list(s.child_ids) for s in graph.states}
    order: list[int] = []
    seen: set[int] = set()

    def visit(node: int, depth: int) -> None:
        if node in seen or node not in children or depth > len(children):
            return
        seen.add(node)
        for child in children[node]:
            visit(child, depth + 1)
        order.append(node)

    for state in graph.states:
        visit(state.id, 0)
    return order


def completions_per_day(
    model: Model, running: Sequence[tuple[int, float]], *, now: datetime, days: int
) -> list[tuple[datetime, float, float]]:
    """Expected completions (and successful ones) per day for the next ``days`` days, over the running
    instances given as (state, seconds in it): each instance adds its chance to finish that day."""
    total = np.zeros(BINS)
    successful = np.zeros(BINS)
    for state_id, elapsed in running:
        distribution, success, _ = model.remaining(state_id, max(elapsed, 0.0))
        total += distribution
        successful += success * distribution
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (now - start).total_seconds()
    out: list[tuple[datetime, float, float]] = []
    bins_at = (np.arange(BINS) * model.step + offset) // DAY  # each bin's day, counted from today
    for day in range(days):
        chosen = bins_at == day
        out.append((start + timedelta(days=day), float(total[chosen].sum()), float(successful[chosen].sum())))
    return out
