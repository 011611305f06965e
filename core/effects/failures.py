"""How an effect tells its caller that it failed, and whether trying again can help."""

from __future__ import annotations

from core.platform.breakers import FailureKind


class EffectFailed(Exception):
    """The effect did not happen. ``kind`` (seed 004): ``transient`` (the target could not take it now;
    the caller's retry policy may try again), ``permanent`` (the request or the data is wrong: no retry
    will help), or ``business`` (the target answered that it will not)."""

    def __init__(self, message: str, kind: FailureKind) -> None:
        super().__init__(message)
        self.message = message
        self.kind: FailureKind = kind

    @property
    def retryable(self) -> bool:
        return self.kind == "transient"
