"""Where workflow state is checkpointed: LangGraph's SQLite checkpointer in the data directory
(embedded default), or its PostgreSQL checkpointer in the audit database when that is PostgreSQL.

A checkpoint holds a workflow's input and the values its steps produced (the audit log keeps only
hashes and decisions), so the runner deletes a workflow's checkpoints once it completes."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import make_url

from agents.errors import StorageError

SQLITE_FILE = "workflows.sqlite"


class Checkpointer(AbstractContextManager):
    """An open LangGraph checkpointer and the connection it owns (closed with it)."""

    def __init__(self, saver: BaseCheckpointSaver, connection: Any, where: str) -> None:
        self.saver, self._connection, self.where = saver, connection, where

    @property
    def broken(self) -> bool:
        """A PostgreSQL connection the server dropped (psycopg marks it closed once it sees that)."""
        return bool(getattr(self._connection, "closed", False))

    def close(self) -> None:
        self._connection.close()

    def __exit__(self, *exc) -> None:
        self.close()


def open_checkpointer(database_url: str | None, data_dir: Path) -> Checkpointer:
    """PostgreSQL when the audit store is PostgreSQL (the same database, LangGraph's own tables),
    else a SQLite file in the data directory."""
    if database_url and database_url.startswith("postgresql"):
        return _postgres(database_url)
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = data_dir / SQLITE_FILE
    try:
        # LangGraph runs a fanned-out step's branches on worker threads; SqliteSaver locks around its writes
        connection = sqlite3.connect(path, check_same_thread=False, timeout=60)
        connection.execute("PRAGMA journal_mode=WAL")
        saver = SqliteSaver(connection)
        saver.setup()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the workflow checkpoints at {path}: {exc}") from None
    return Checkpointer(saver, connection, str(path))


def _postgres(database_url: str) -> Checkpointer:
    import psycopg
    from psycopg.rows import dict_row
    from langgraph.checkpoint.postgres import PostgresSaver

    url = make_url(database_url).set(drivername="postgresql")  # psycopg takes a libpq URL, not SQLAlchemy's
    try:
        connection = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True,
                                     prepare_threshold=0, row_factory=dict_row)
        saver = PostgresSaver(connection)
        saver.setup()
    except psycopg.Error as exc:
        raise StorageError(f"cannot open the workflow checkpoints in {url.render_as_string(hide_password=True)}: "
                           f"{exc}") from None
    return Checkpointer(saver, connection, url.render_as_string(hide_password=True))
