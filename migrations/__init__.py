"""Alembic migrations of the audit store (`upgrade()` brings a database to the current schema)."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import OperationalError

SCRIPT_LOCATION = str(Path(__file__).parent)
# SQLite lets one writer in at a time and makes the others wait in its busy handler. pysqlite's
# default wait (5 s) ran out with a dozen writers on a loaded disk and failed audit writes.
SQLITE_BUSY_TIMEOUT_S = 60.0


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
    if url.startswith("sqlite"):
        _use_wal(url)


def sqlite_engine(url: str, **kwargs):
    return create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kwargs)


def _use_wal(url: str) -> None:
    """Put the file in WAL mode (readers do not wait for the writer; a commit is cheap). The mode
    belongs to the file and is set when the store is opened. Switching a file that is not in WAL mode
    yet fails at once, without the busy wait, while another connection holds a lock: hence the retries."""
    engine = sqlite_engine(url, poolclass=pool.NullPool)
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    try:
        with engine.connect() as conn:
            while True:
                try:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # an in-memory database stays "memory"
                    return
                except OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        engine.dispose()
