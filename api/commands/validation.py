"""The answer of a validate command: a definition checked as saving it would check it, not stored."""

from __future__ import annotations

from pydantic import BaseModel

from api.errors import Problem


class ValidationReport(BaseModel):
    """What a definition's validators say, without storing it: every problem with the path of the
    field or node it concerns (``states[4].approval.roles``, ``steps[2].params.url``)."""

    valid: bool
    problems: list[Problem]
