"""The one type of a tool declaration: name → input model → output model, with its time limit per
attempt and retry policy. Every domain declares its tools with it (automation's rule actions in
core/automation/actions.py, the step tools in core/steps/tools.py); the catalogue that composes them
is core/steps/catalogue.py, above the domains (docs/decisions/0009-one-tool-registry-across-domains.md).

A tool's activity is bound to its declaration where the activity lives; the declaration alone is what
validation, the published schema and the workflows that call it read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from temporalio.common import RetryPolicy


class ToolOutput(BaseModel):
    """What every tool reports; ``already_done`` when a retry found the effect recorded."""

    already_done: bool = False


class RetrySpec(BaseModel):
    """Retry settings a caller carries into a workflow (e.g. TRELLIS_WEBHOOK_* for rule chains)."""

    max_attempts: int
    initial_seconds: float
    max_seconds: float


P = TypeVar("P", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


@dataclass(frozen=True)
class ToolSpec(Generic[P, Out]):
    """One tool: name, input model, output model, time limit per attempt, retry policy.

    ``activity`` is the activity type name the tool runs as (what histories record); ``dead_letters``
    keeps a call that failed for good for redelivery (webhooks)."""

    name: str
    params: type[P]
    output: type[Out]
    time_limit: Callable[[P], timedelta]
    retry: Callable[[RetrySpec], RetryPolicy]
    dead_letters: bool = False
    activity: str = ""
    description: str = ""

    def time_limit_of(self, params: BaseModel) -> timedelta:
        return self.time_limit(params)  # type: ignore[arg-type]

    @property
    def activity_name(self) -> str:
        return self.activity or f"tool.{self.name}"


def fixed_limit(seconds: float) -> Callable[[Any], timedelta]:
    return lambda _: timedelta(seconds=seconds)
