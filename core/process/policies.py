"""What the approval policy is asked about a transition (core/policy): the same request whoever moves the
instance, a person through the API or a step's or agent's ``instance.transition``, so that a template's
``transition`` policies ("moving a quote to accepted above 10,000 needs a manager") hold on every path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from core.entities import store as entities
from core.policy.contracts import Action, CheckRequest, Subject
from core.process import instances
from core.process.contracts import InstanceView


@dataclass(frozen=True)
class TransitionAsked:
    request: CheckRequest
    view: InstanceView  # the instance as it was when asked (its current state names the move)


async def transition_request(
    conn: AsyncConnection, instance_id: uuid.UUID, to_state_id: int, fields: dict[str, Any], subject: Subject
) -> TransitionAsked | None:
    """The check request of moving ``instance_id`` to ``to_state_id`` with ``fields`` (the policy's
    ``args``) and its root entity (``entity``); None when there is no such instance (the transition itself
    answers that)."""
    view = await instances.get_view(conn, instance_id)
    if view is None:
        return None
    target = next((s for s in view.allowed_next_states if s.id == to_state_id), None)
    entity = await entities.find_live(conn, uuid.UUID(view.root_entity_id)) if view.root_entity_id else None
    request = CheckRequest(
        subject=subject,
        action=Action(
            kind="transition",
            name=f"{view.template_code}:{target.name if target else to_state_id}",
            template_code=view.template_code,
            to_state_id=to_state_id,
            to_state_name=target.name if target else None,
        ),
        arguments=fields,
        entity=entity,
    )
    return TransitionAsked(request=request, view=view)
