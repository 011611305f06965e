"""Contracts of experiments (issue 26): two or more versions of a process template or of a step
workflow run side by side as variants with weights; new runs are routed by the root entity; a guardrail
stops routing to a variant whose success rate is significantly worse; promoting a variant makes it the
default and ends the experiment."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from core.experiments.statistics import Difference
from core.platform.contracts import RequestModel, RequestPart

VariantName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]
SubjectKind = Literal["process", "steps"]


class VariantSpec(RequestPart):
    name: VariantName
    version: int = Field(ge=1, le=1_000_000, description="The template version this variant runs")
    weight: float = Field(gt=0, le=1000, description="Relative share of new instances")


class VariantArm(BaseModel):
    """The experiment and variant a new run was routed to, carried on its start input and recorded on
    the run (a process instance's projection, a step execution's row)."""

    experiment_id: str
    name: str


class ExperimentCreate(RequestModel):
    subject_kind: SubjectKind = Field(
        default="process", description="process: a template's versions; steps: a step workflow's versions"
    )
    subject: str = Field(min_length=1, max_length=100, description="The template code or the step workflow's name")
    variants: list[VariantSpec] = Field(min_length=2, max_length=5)
    min_sample: int = Field(
        default=100, ge=10, le=1_000_000, description="Finished runs per variant before anything is called"
    )
    alpha: float = Field(default=0.05, gt=0, le=0.2, description="Significance level of every test")
    guardrail: bool = Field(default=True, description="Stop routing to a significantly worse variant by itself")

    @model_validator(mode="after")
    def _distinct(self) -> ExperimentCreate:
        names = [v.name for v in self.variants]
        versions = [v.version for v in self.variants]
        if len(set(names)) != len(names) or len(set(versions)) != len(versions):
            raise ValueError("each variant needs its own name and its own version")
        return self


class Variant(BaseModel):
    name: str
    version: int
    weight: float
    routing: bool = Field(description="False once the guardrail stopped it (or the experiment ended)")
    stopped_reason: str | None = None
    stopped_ts: datetime | None = None


class ExperimentPublic(BaseModel):
    id: uuid.UUID
    subject_kind: SubjectKind
    subject: str
    status: Literal["running", "ended"]
    variants: list[Variant]
    min_sample: int
    alpha: float
    guardrail: bool
    created_by: str
    created_ts: datetime
    ended_ts: datetime | None
    ended_by: str | None
    promoted: str | None


class VariantFigures(BaseModel):
    name: str
    version: int
    routing: bool
    started: int
    finished: int
    succeeded: int
    success_rate: float | None
    duration_mean_seconds: float | None
    duration_sd_seconds: float | None
    seconds_per_state: dict[str, float] = Field(
        description="Mean time spent per state (by name); per step for a step workflow"
    )


class Comparison(BaseModel):
    variant: str
    against: str = Field(description="The first variant, the control")
    enough_data: bool = Field(description="Both have at least min_sample finished runs")
    success_rate: Difference | None = Field(description="variant - control, with its interval and p-value")
    duration_seconds: Difference | None
    verdict: str = Field(description="What can be said, in words")


class ExperimentAnalysis(BaseModel):
    experiment: ExperimentPublic
    variants: list[VariantFigures]
    comparisons: list[Comparison]


class PromoteCreate(RequestModel):
    variant: VariantName
