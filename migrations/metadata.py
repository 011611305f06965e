"""Every domain's tables on the one shared ``MetaData``: what Alembic migrates and compares against."""

from __future__ import annotations

from core.agents import tables as agents_tables
from core.automation import tables as automation_tables
from core.entities import tables as entities_tables
from core.experiments import tables as experiments_tables
from core.notifications import tables as notifications_tables
from core.people import tables as people_tables
from core.platform import breakers as platform_tables
from core.platform import console_sessions as console_tables
from core.platform import idempotency as idempotency_tables
from core.platform.database import SCHEMA, Base
from core.policy import tables as policy_tables
from core.process import tables as process_tables
from core.steps import tables as steps_tables
from core.work import tables as work_tables

DOMAIN_TABLES = (
    platform_tables,
    console_tables,
    idempotency_tables,
    entities_tables,
    notifications_tables,
    people_tables,
    policy_tables,
    experiments_tables,
    process_tables,
    automation_tables,
    agents_tables,
    steps_tables,
    work_tables,
)
target_metadata = Base.metadata

__all__ = ["DOMAIN_TABLES", "SCHEMA", "target_metadata"]
