"""The one way a store opens the audit database: migrated on open, SQL errors as StorageError
naming the store and the URL (without its password)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

import migrations
from agents.errors import StorageError

from orchestrator.audit.store import _make_engine, _safe_url


class SqlStore:
    NAME = "database"  # how errors name the store: "job store", "key store"...

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            migrations.upgrade(url)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open the {self.NAME} at {_safe_url(url)}: {exc}") from None
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"{self.NAME} failed at {_safe_url(self.url)}: {exc.__class__.__name__}: "
                               f"{getattr(exc, 'orig', None) or exc}") from None
