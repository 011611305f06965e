"""The approval policy's part of the worker: approvals and their activities."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.policy.approvals import ApprovalActivities
from workflows.bundles import DomainBundle
from workflows.policy.approval import PolicyApprovalWorkflow

WORKFLOWS: tuple[type, ...] = (PolicyApprovalWorkflow,)


def bundle(engine: AsyncEngine) -> DomainBundle:
    approvals = ApprovalActivities(engine)
    return DomainBundle("policy", WORKFLOWS, [approvals.record])
