"""Run the Alembic migrations to head; called on start by the launcher, the API and the worker."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config

from core.platform.paths import PROJECT_ROOT

_ROOT = PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config(str(_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str) -> None:
    """Migrate to head (blocking). Safe to call from several processes at once."""
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_database_async(database_url: str) -> None:
    """Same, from inside a running event loop (Alembic's env runs its own loop, so use a thread)."""
    await asyncio.to_thread(upgrade_database, database_url)
