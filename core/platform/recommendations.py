"""What an optimizer recommendation looks like (seed 004's optimizer, issue 26 §4), the same for a step
workflow and a process template: what kind of change, about which steps or states, in words a person
can act on, and the figures it rests on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

RecommendationKind = Literal[
    "run_in_parallel",
    "slowest_step",
    "failing_step",
    "over_expected_time",
    "transition_never_taken",
    "rarely_reached",
]


class Recommendation(BaseModel):
    kind: RecommendationKind
    subjects: list[str] = Field(description="The steps or states it is about, by name")
    title: str = Field(description="What to consider doing, in one line")
    detail: str = Field(description="Why: the measured figures in words")
    saved_seconds: float | None = Field(
        default=None, description="For run_in_parallel: the time a run would save, estimated from recorded durations"
    )
    figures: dict[str, Any] = Field(default_factory=dict, description="The figures behind it")


class Recommendations(BaseModel):
    subject: str = Field(description="The step workflow's name or the template's code")
    version: int
    basis: str = Field(description="What was measured, e.g. 412 finished executions of v3 in the last 30 days")
    items: list[Recommendation]
    notes: list[str] = Field(
        default_factory=list, description="What could not be judged, e.g. too few runs to call a path unused"
    )
