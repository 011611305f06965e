"""`make backtest`: is the forecast any good? Measured on a history of known structure (issue 26).

It generates a year of instances of one template whose branch probabilities and time distributions per
state are chosen here (the truth), writes them into Postgres as the workflows would (the projection and
the state-transition events), and cuts the history at a date: the model is learned from what was
recorded by then, and every instance running at the cut is forecast, with the same code the API runs
(core/process/forecast_data.py). What happened after the cut is known, so it reports:

- the remaining-time error: the median absolute error of the p50, and how often the truth fell under
  the p90;
- the success probability: the Brier score and a calibration table;
- the same for a naive baseline: the sum of the states' avg_duration_days along the most likely path,
  and the template's overall success rate;
- per state, the model's success probability from entering it against the true one (computed from the
  chosen probabilities), for states at least 500 instances passed;
- how long forecasting takes: learning the model, every running instance at once, and one instance.

Exit status 1 when the forecast does not beat the baseline on both, or a state with 500 passes is off by
more than 0.05. Uses its own embedded Postgres in .trellis/backtest, emptied each
run; random with a fixed seed."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from core.platform.database import libpq_url, make_engine
from core.platform.embedded import start_postgres
from core.platform.migrate import upgrade_database
from core.platform.paths import PROJECT_ROOT
from core.process import forecast_data
from core.process.contracts import TemplateCreate
from core.process.forecast import CANCELLED
from core.process.store import EVENT_COLUMNS, event_row
from core.process.templates import create_version

CODE = "BACKTEST"
DAY = 86_400.0
REFERENCE = datetime(2026, 6, 30, tzinfo=UTC)  # the history ends here; fixed, so every run is the same
CUT = REFERENCE - timedelta(days=120)

# The truth: where each state goes next, and how long a stay takes (days, drawn by the function).
Draw = Callable[[random.Random], float]
TRUTH: dict[int, tuple[str, list[tuple[int, float]], Draw, float | None, bool | None]] = {
    # id: (name, [(next, probability)], stay in days, the author's avg_duration_days, success when terminal)
    0: ("intake", [(1, 0.7), (2, 0.3)], lambda r: r.lognormvariate(0.4, 0.6), 1.0, None),
    1: ("review", [(3, 0.6), (4, 0.4)], lambda r: r.gammavariate(2.0, 1.5), 2.0, None),
    4: ("rework", [(3, 0.75), (6, 0.25)], lambda r: r.lognormvariate(1.4, 0.5), 3.0, None),
    3: ("approved", [(5, 0.9), (6, 0.1)], lambda r: r.gammavariate(4.0, 1.0), 3.0, None),
    2: ("declined", [], lambda r: 0.0, None, False),
    5: ("delivered", [], lambda r: 0.0, None, True),
    6: ("lost", [], lambda r: 0.0, None, False),
}


def true_success() -> dict[int, float]:
    """P(ending in a success state | entering the state), from the chosen probabilities."""
    out: dict[int, float] = {}

    def of(state: int) -> float:
        if state not in out:
            _, branches, _, _, success = TRUTH[state]
            out[state] = float(bool(success)) if not branches else sum(p * of(j) for j, p in branches)
        return out[state]

    for state in TRUTH:
        of(state)
    return out


def template() -> TemplateCreate:
    states = []
    for state_id, (name, branches, _, expected, success) in TRUTH.items():
        parents = [s for s, t in TRUTH.items() if any(j == state_id for j, _ in t[1])]
        states.append(
            {
                "id": state_id,
                "name": name,
                "parent_ids": parents,
                "child_ids": [j for j, _ in branches],
                "terminal_flag": not branches,
                "success": success,
                "avg_duration_days": expected,
            }
        )
    return TemplateCreate.model_validate(
        {
            "code": CODE,
            "name": "Backtest",
            "industry_sector": "testing",
            "workflow_graph": {"states": states, "sla_days": 12},
        }
    )


def walk(rng: random.Random, started: datetime) -> list[tuple[int, datetime]]:
    path, ts, state = [(0, started)], started, 0
    while TRUTH[state][1]:
        ts += timedelta(days=TRUTH[state][2](rng))
        roll, acc = rng.random(), 0.0
        for target, p in TRUTH[state][1]:
            acc += p
            if roll < acc:
                state = target
                break
        else:
            state = TRUTH[state][1][-1][0]
        path.append((state, ts))
    return path


def seed(url: str, instances: int, head_id: uuid.UUID) -> dict[str, tuple[list[tuple[int, datetime]], bool]]:
    """Every instance's whole walk (also the part after the cut, which the model must not see)."""
    rng = random.Random(26)
    walks: dict[str, tuple[list[tuple[int, datetime]], bool]] = {}
    graph_rows, event_rows = [], []
    for _ in range(instances):
        instance = str(uuid.uuid4())
        started = REFERENCE - timedelta(days=rng.uniform(0, 365))
        path = walk(rng, started)
        success = bool(TRUTH[path[-1][0]][4])
        walks[instance] = (path, success)
        finished = path[-1][1]
        for seq, (state, ts) in enumerate(path, start=1):
            row = event_row(
                instance,
                seq,
                "state_transition",
                ts=ts,
                from_state_id=path[seq - 2][0] if seq > 1 else None,
                to_state_id=state,
                actor="backtest",
            )
            row["payload"] = json.dumps(row["payload"])
            event_rows.append(tuple(row[c] for c in EVENT_COLUMNS))
        last = TRUTH[path[-1][0]]
        graph_rows.append(
            (
                instance,
                head_id,
                path[-1][0],
                last[0],
                "completed",
                started,
                finished,
                f"backtest-{instance}",
                CODE,
                1,
                success,
                len(path),
                finished,
            )
        )
    with psycopg.connect(libpq_url(url)) as conn:
        with conn.cursor() as cur:
            columns = (
                "id, workflow_head_id, current_state_id, current_state_name, workflow_status, started_ts, "
                "completed_ts, workflow_id, template_code, template_version, success_flag, last_seq, updated_ts"
            )
            with cur.copy(f"COPY app.d_industry_workflow_graph_data ({columns}) FROM STDIN") as copy:
                for graph_row in graph_rows:
                    copy.write_row(graph_row)
            with cur.copy(f"COPY app.f_industry_workflow_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for event in event_rows:
                    copy.write_row(event)
        conn.execute("ANALYZE")
    return walks


def calibration(pairs: list[tuple[float, int]]) -> list[dict[str, Any]]:
    rows = []
    for low in [i / 10 for i in range(10)]:
        chosen = [(p, y) for p, y in pairs if low <= p < low + 0.1 or (low == 0.9 and p == 1.0)]
        if chosen:
            rows.append(
                {
                    "bin": f"{low:.1f}-{low + 0.1:.1f}",
                    "instances": len(chosen),
                    "predicted": round(statistics.fmean(p for p, _ in chosen), 3),
                    "observed": round(statistics.fmean(y for _, y in chosen), 3),
                }
            )
    return rows


async def evaluate(
    url: str, walks: dict[str, tuple[list[tuple[int, datetime]], bool]], min_visits: int
) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            started = time.perf_counter()
            model = await forecast_data.build_model(conn, CODE, 1, as_of=CUT, min_visits=min_visits)
            learned = time.perf_counter() - started
            assert model is not None
            runs = await forecast_data.running(conn, CODE, 1, CUT)
            listed = time.perf_counter() - started
            forecasts = [forecast_data.forecast_of(model, run, CUT) for run in runs]
            all_seconds = time.perf_counter() - started
            # One instance, the way its API call does it (the model already learned and cached).
            one = runs[len(runs) // 2]
            singles = []
            for _ in range(20):
                t0 = time.perf_counter()
                found = await forecast_data.running(conn, CODE, 1, CUT, only=one.instance_id)
                forecast_data.forecast_of(model, found[0], CUT)
                singles.append((time.perf_counter() - t0) * 1000)
            visits = await forecast_data.visits(conn, CODE, 1, CUT)
    finally:
        await engine.dispose()

    # The baseline: avg_duration_days along the most likely path (the most frequent branch as recorded by
    # the cut), the time already spent taken off the current state's; the overall success rate by the cut.
    counts: dict[int, dict[int, int]] = {}
    for v in visits:
        if v.next_state is not None and v.next_state != CANCELLED:
            counts.setdefault(v.state_id, {}).setdefault(v.next_state, 0)
            counts[v.state_id][v.next_state] += 1
    finished_by_cut = [s for path, s in walks.values() if path[-1][1] <= CUT]
    base_rate = sum(finished_by_cut) / len(finished_by_cut)

    def naive_remaining(state: int, elapsed: float) -> float:
        total = max((TRUTH[state][3] or 0.0) * DAY - elapsed, 0.0)
        while TRUTH[state][1]:
            state = max(counts.get(state, {}).items(), key=lambda kv: kv[1], default=(TRUTH[state][1][0][0], 0))[0]
            total += (TRUTH[state][3] or 0.0) * DAY
        return total

    errors, naive_errors, under_p90, pairs, naive_pairs = [], [], 0, [], []
    for run, forecast in zip(runs, forecasts, strict=True):
        path, success = walks[str(run.instance_id)]
        actual = (path[-1][1] - CUT).total_seconds()
        errors.append(abs(forecast.remaining_p50_seconds - actual))
        naive_errors.append(abs(naive_remaining(run.state_id, (CUT - run.entered).total_seconds()) - actual))
        under_p90 += actual <= forecast.remaining_p90_seconds
        pairs.append((forecast.success_probability, int(success)))
        naive_pairs.append((base_rate, int(success)))
    passes: dict[int, int] = {}
    for v in visits:
        passes[v.state_id] = passes.get(v.state_id, 0) + 1
    truth = true_success()
    states = [
        {
            "state": TRUTH[s][0],
            "passed": passes.get(s, 0),
            "predicted": round(model.success[s], 4),
            "true": round(truth[s], 4),
            "error": round(abs(model.success[s] - truth[s]), 4),
        }
        for s in TRUTH
        if TRUTH[s][1] and passes.get(s, 0) >= 500
    ]
    brier = statistics.fmean((p - y) ** 2 for p, y in pairs)
    naive_brier = statistics.fmean((p - y) ** 2 for p, y in naive_pairs)
    return {
        "instances": len(walks),
        "running_at_cut": len(runs),
        "cut": CUT.isoformat(),
        "median_abs_error_days": round(statistics.median(errors) / DAY, 3),
        "naive_median_abs_error_days": round(statistics.median(naive_errors) / DAY, 3),
        "share_under_p90": round(under_p90 / len(runs), 3),
        "brier": round(brier, 4),
        "naive_brier": round(naive_brier, 4),
        "calibration": calibration(pairs),
        "states": states,
        "timing_ms": {
            "learn_model": round(learned * 1000, 1),
            "learn_and_list_running": round(listed * 1000, 1),
            "every_running_instance": round(all_seconds * 1000, 1),
            "one_instance_p50": round(statistics.median(singles), 2),
            "one_instance_max": round(max(singles), 2),
        },
    }


def report(result: dict[str, Any]) -> tuple[str, bool]:
    time_ok = result["median_abs_error_days"] < result["naive_median_abs_error_days"]
    brier_ok = result["brier"] < result["naive_brier"]
    states_ok = all(s["error"] <= 0.05 for s in result["states"])
    timing = result["timing_ms"]
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        f"History: {result['instances']:,} instances of one template over a year; cut at {result['cut'][:10]}, "
        f"{result['running_at_cut']:,} running then",
        "",
        "| figure | forecast | naive baseline | forecast better |",
        "|---|---:|---:|:---:|",
        f"| remaining time, median absolute error (days) | {result['median_abs_error_days']} | "
        f"{result['naive_median_abs_error_days']} | {'yes' if time_ok else 'NO'} |",
        f"| success, Brier score (lower is better) | {result['brier']} | {result['naive_brier']} | "
        f"{'yes' if brier_ok else 'NO'} |",
        f"| actual remaining time under the p90 | {result['share_under_p90']:.1%} | | |",
        "",
        "| predicted success (bin) | instances | mean predicted | observed |",
        "|---|---:|---:|---:|",
        *[f"| {c['bin']} | {c['instances']} | {c['predicted']} | {c['observed']} |" for c in result["calibration"]],
        "",
        "| state | passed by the cut | predicted P(success) | true | error | ≤ 0.05 |",
        "|---|---:|---:|---:|---:|:---:|",
        *[
            f"| {s['state']} | {s['passed']:,} | {s['predicted']} | {s['true']} | {s['error']} | "
            f"{'yes' if s['error'] <= 0.05 else 'NO'} |"
            for s in result["states"]
        ],
        "",
        "| timing | ms | target |",
        "|---|---:|---|",
        "| learn the model from every visit by the cut (a cold call pays it once per "
        f"TRELLIS_FORECAST_MODEL_SECONDS) | {timing['learn_model']} | |",
        f"| every running instance forecast, model learned in the same call | {timing['every_running_instance']} | "
        f"≤ 2,000 {'yes' if timing['every_running_instance'] <= 2000 else 'NO'} |",
        f"| one instance, the model already learned as the API keeps it (p50 / max of 20) | "
        f"{timing['one_instance_p50']} / {timing['one_instance_max']} | "
        f"≤ 50 {'yes' if timing['one_instance_max'] <= 50 else 'NO'} |",
    ]
    return "\n".join(lines), time_ok and brier_ok and states_ok


async def prepare(url: str) -> uuid.UUID:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "TRUNCATE app.f_industry_workflow_events, app.instance_forecasts, app.forecast_warnings, "
                "app.d_industry_workflow_graph_data, app.d_industry_workflow_graph_head CASCADE"
            )
            created, _ = await create_version(conn, template(), created_by="backtest")
        return created.id
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--min-visits", type=int, default=30)
    parser.add_argument("--folder", type=Path, default=PROJECT_ROOT / ".trellis" / "backtest")
    args = parser.parse_args()
    url = start_postgres(args.folder / "postgres")[1]  # its own database: every run empties it
    upgrade_database(url)
    head = asyncio.run(prepare(url))
    started = time.perf_counter()
    walks = seed(url, args.instances, head)
    print(f"generated and wrote {len(walks):,} instances in {time.perf_counter() - started:.0f} s", flush=True)
    result = asyncio.run(evaluate(url, walks, args.min_visits))
    table, ok = report(result)
    print(table)
    out = PROJECT_ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "backtest.json").write_text(json.dumps(result, indent=2))
    (out / "backtest.md").write_text(table + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
