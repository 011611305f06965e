"""The migrations produce exactly the schema the models declare: Alembic's compare_metadata finds no
difference between a database migrated to head and the tables of every domain."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine

from core.platform.database import SCHEMA
from core.platform.migrate import upgrade_database_async
from migrations.metadata import target_metadata


def _differences(connection: Connection) -> list[Any]:
    def ours(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "schema" or name == SCHEMA

    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": ours,
            "compare_type": True,
            "compare_server_default": True,
            "version_table_schema": SCHEMA,
        },
    )
    return [d for d in compare_metadata(context, target_metadata) if not _is_version_table(d)]


def _is_version_table(difference: Any) -> bool:
    return isinstance(difference, tuple) and getattr(difference[-1], "name", None) == "alembic_version"


async def test_migrations_match_the_models(fresh_database: str) -> None:
    await upgrade_database_async(fresh_database)  # idempotent: head already
    engine = create_engine(fresh_database)
    try:
        with engine.connect() as connection:
            differences = _differences(connection)
    finally:
        engine.dispose()
    assert differences == []
