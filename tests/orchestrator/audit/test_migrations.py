"""Migrations bring an empty database to the current models, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import migrations
from orchestrator.audit.records import Base


def test_upgrade_empty_database_matches_models(database_url):
    migrations.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert diff == [], f"migrated schema differs from the models: {diff}"
    assert {"runs", "attempts", "alembic_version"} <= tables


def test_upgrade_is_idempotent(database_url):
    migrations.upgrade(database_url)
    migrations.upgrade(database_url)
