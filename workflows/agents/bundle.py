"""The agents domain's part of the worker: session workflows, the LLM call and the session record."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.agents.llm import LlmActivities
from activities.agents.sessions import SessionActivities
from core.platform.settings import Settings
from workflows.agents.session import AgentSessionWorkflow
from workflows.bundles import DomainBundle

WORKFLOWS: tuple[type, ...] = (AgentSessionWorkflow,)


def bundle(engine: AsyncEngine, settings: Settings) -> DomainBundle:
    llm = LlmActivities(engine, settings)
    sessions = SessionActivities(engine)
    return DomainBundle("agents", WORKFLOWS, [llm.call_agent, sessions.record])
