"""The action registry: each action type's declaration (core/automation/actions.py: name, parameters,
output, time limit, retry policy) bound to the activity that performs it. Chains call actions through
it, the worker registers its activities from it, and rule validation reads the same declarations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from activities.automation.actions import ActionActivities
from core.automation.actions import SPECS, ActionSpec
from core.automation.rules import ActionInput


@dataclass(frozen=True)
class RegisteredAction:
    spec: ActionSpec[Any, Any]
    activity: Callable[[ActionActivities, ActionInput], Awaitable[Any]]

    @property
    def activity_name(self) -> str:
        """The activity type name (``action.<name>``), as histories record it."""
        return str(getattr(self.activity, "__temporal_activity_definition").name)


_ACTIVITIES: dict[str, Callable[[ActionActivities, ActionInput], Awaitable[Any]]] = {
    "update_field": ActionActivities.update_field,
    "create_entity": ActionActivities.create_entity,
    "send_notification": ActionActivities.send_notification,
    "send_email": ActionActivities.send_email,
    "call_webhook": ActionActivities.call_webhook,
    "run_script": ActionActivities.run_script,
}

ACTIONS: dict[str, RegisteredAction] = {name: RegisteredAction(SPECS[name], _ACTIVITIES[name]) for name in SPECS}


def activities_of(actions: ActionActivities) -> list[Callable[..., Any]]:
    """The bound activity methods of every registered action, for the worker."""
    return [getattr(actions, entry.activity.__name__) for entry in ACTIONS.values()]
