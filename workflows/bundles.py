"""How a domain registers with the worker: one bundle per domain, in the spirit of the SDK's
``SimplePlugin``, which each bundle becomes.

A domain's ``workflows/<domain>/bundle.py`` says which workflow types it runs, which activities it
performs (its step tools and rule actions among them), and which readers of the entity outbox it adds.
``worker.py`` composes the bundles, and so do the tests' worker and the replayer (which takes the
workflow types only), so a new workflow or activity is registered in one place: its domain's bundle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.plugin import SimplePlugin

from core.entities.contracts import EntityEventData

# Called with the dispatcher's transaction and the batch of entity events it is about to mark
# dispatched (so a failure retries the batch: a subscriber must be idempotent).
OutboxSubscriber = Callable[[AsyncConnection, list[EntityEventData]], Awaitable[None]]


@dataclass(frozen=True)
class DomainBundle:
    """What one domain adds to a worker."""

    name: str
    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]] = ()
    outbox_subscribers: Sequence[OutboxSubscriber] = ()

    def plugin(self) -> SimplePlugin:
        return SimplePlugin(f"trellis.{self.name}", workflows=list(self.workflows), activities=list(self.activities))
