"""Webhooks that failed their last attempt, and their redelivery."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.commands import automation as commands
from api.deps import EngineDep, GatewayDep, Operator, Reader
from api.pagination import Cursor, Limit, Offset
from core.automation.rules import DeadLetterPublic, RedeliveryResult
from core.platform.contracts import Page

router = APIRouter(prefix="/api/v1/webhook-dead-letters", tags=["automation"])


@router.get("", response_model=Page[DeadLetterPublic])
async def list_dead_letters(
    engine: EngineDep,
    principal: Reader,
    rule_id: uuid.UUID | None = None,
    open_only: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[DeadLetterPublic]:
    """Newest first; ``open_only``: those not yet redelivered with a 2xx answer."""
    return await commands.dead_letters(
        principal, engine, rule_id=rule_id, open_only=open_only, limit=limit, offset=offset, cursor=cursor
    )


@router.post("/{dead_letter_id}/redeliver", response_model=RedeliveryResult)
async def redeliver(
    dead_letter_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, principal: Operator
) -> RedeliveryResult:
    """Send the webhook again with its original webhook-id and body; answers with the receiver's status."""
    return await commands.redeliver(dead_letter_id, principal, engine, gateway)
