"""Alembic environment: the target is the orchestrator's metadata (audit log and batch jobs), nothing else."""

from alembic import context
from sqlalchemy import create_engine, pool

from migrations import sqlite_engine
from orchestrator.jobs import records as job_models  # noqa: F401  (registers the jobs tables on the same Base)
from orchestrator.audit.records import Base
from orchestrator.access import records as access_models  # noqa: F401  (api keys, idempotency, webhooks)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = (sqlite_engine if url.startswith("sqlite") else create_engine)(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
