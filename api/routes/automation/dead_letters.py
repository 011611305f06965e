"""Webhooks that failed their last attempt, and their redelivery."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import EngineDep, GatewayDep, Operator, Reader
from api.errors import ApiError
from api.pagination import Cursor, Limit, Offset
from core.automation import store
from core.automation.rules import DeadLetterPublic, RedeliveryInput, RedeliveryResult
from core.platform.contracts import Page
from workflows.automation.redelivery import WebhookRedeliveryWorkflow

router = APIRouter(prefix="/api/v1/webhook-dead-letters", tags=["automation"])


@router.get("", response_model=Page[DeadLetterPublic])
async def list_dead_letters(
    engine: EngineDep,
    _: Reader,
    rule_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[DeadLetterPublic]:
    async with engine.connect() as conn:
        return await store.dead_letters_page(conn, rule_id=rule_id, limit=limit, offset=offset, cursor=cursor)


@router.post("/{dead_letter_id}/redeliver", response_model=RedeliveryResult)
async def redeliver(dead_letter_id: uuid.UUID, engine: EngineDep, gateway: GatewayDep, _: Operator) -> RedeliveryResult:
    """Send the webhook again with its original webhook-id and body; answers with the receiver's status."""
    async with engine.connect() as conn:
        if not await store.dead_letter_exists(conn, dead_letter_id):
            raise ApiError(404, "not_found", f"no dead letter {dead_letter_id}")
    return await gateway.execute(
        WebhookRedeliveryWorkflow.run,
        RedeliveryInput(dead_letter_id=str(dead_letter_id)),
        workflow_id=f"webhook-redelivery-{dead_letter_id}-{uuid.uuid4().hex[:8]}",
    )
