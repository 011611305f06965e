"""Pausing a run (a process instance, a step execution, an agent session): who paused it and why, and
the one refusal every paused run answers with (409 ``paused``). Each run's workflow keeps its own
``PauseInfo`` and records it in its projection's ``paused`` column.

The rule, the same for the three kinds: while paused, a run takes no transition or decision and starts
no new step or agent call; what is under way finishes. Timers keep time; one that falls due while the
run is paused acts when it is resumed.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from temporalio.exceptions import ApplicationError

from core.platform import errors
from core.platform.contracts import RequestModel, Role


class PauseInfo(BaseModel):
    actor: str
    reason: str
    ts: datetime


class PauseCreate(RequestModel):
    reason: str = Field(min_length=1, max_length=500, description="Why the run is paused (shown to whoever is refused)")


class ResumeCreate(RequestModel):
    comment: str | None = Field(default=None, max_length=500)


class PauseRequest(BaseModel):
    actor: str
    actor_role: Role
    reason: str


class ResumeRequest(BaseModel):
    actor: str
    actor_role: Role
    comment: str | None = None


def paused_error(what: str, info: PauseInfo) -> ApplicationError:
    return errors.PAUSED.error(
        f"{what} is paused by {info.actor} since {info.ts:%Y-%m-%d %H:%M} UTC: {info.reason}; "
        "it takes nothing until it is resumed",
        {"paused": info.model_dump(mode="json")},
    )


def not_paused_error(what: str) -> ApplicationError:
    return errors.NOT_PAUSED.error(f"{what} is not paused; there is nothing to resume")


def already_paused_error(what: str, info: PauseInfo) -> ApplicationError:
    return errors.ALREADY_PAUSED.error(
        f"{what} is already paused by {info.actor}: {info.reason}", {"paused": info.model_dump(mode="json")}
    )
