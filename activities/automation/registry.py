"""The rule actions' part of the one tool registry: each action's declaration (core/automation/actions.py:
name, parameters, output, time limit, retry policy) bound to the activity that performs it. Chains call
actions through it, the worker registers its activities from it (worker.py, beside the step tools of
activities/steps/tools.py), and rule validation reads the same declarations.

``start_workflow`` has no binding here: its activity belongs to the step-workflow domain, above
automation, and a chain calls it by the declaration's activity name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from activities.automation.actions import ActionActivities
from core.automation.actions import SPECS, ActionSpec
from core.automation.rules import ActionInput

ActionActivity = Callable[[ActionActivities, ActionInput], Awaitable[Any]]


@dataclass(frozen=True)
class RegisteredAction:
    spec: ActionSpec[Any, Any]
    activity: ActionActivity | None  # None: registered by a domain above automation, called by name

    @property
    def activity_name(self) -> str:
        """The activity type name (``action.<name>``), as histories record it."""
        return self.spec.activity_name


_ACTIVITIES: dict[str, ActionActivity] = {
    "update_field": ActionActivities.update_field,
    "create_entity": ActionActivities.create_entity,
    "send_notification": ActionActivities.send_notification,
    "send_email": ActionActivities.send_email,
    "call_webhook": ActionActivities.call_webhook,
    "run_script": ActionActivities.run_script,
}

ACTIONS: dict[str, RegisteredAction] = {name: RegisteredAction(SPECS[name], _ACTIVITIES.get(name)) for name in SPECS}


def activities_of(actions: ActionActivities) -> list[Callable[..., Any]]:
    """The bound activity methods of the actions automation performs itself, for the worker."""
    return [getattr(actions, entry.activity.__name__) for entry in ACTIONS.values() if entry.activity is not None]
