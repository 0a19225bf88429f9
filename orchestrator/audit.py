"""The audit store: every accepted task leaves a run record with all its attempts, also on failure."""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

import migrations
from agents.errors import StorageError
from agents.results import Attempt, CascadeResult

from .audit_models import AttemptRecord, RunRecord


def _now() -> datetime:
    return datetime.now(timezone.utc)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditStore:
    """Writes and reads run records. Migrates its database to the current schema on open."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            migrations.upgrade(url)
            self.engine = _make_engine(url)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open the audit store at {_safe_url(url)}: {exc.__class__.__name__}: {exc.orig if hasattr(exc, 'orig') else exc}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def start_run(self, task: str, text: str, params: dict[str, Any], config_hash: str) -> str:
        """Record an accepted task before any model runs, so a crash still leaves a trace."""
        run_id = str(uuid.uuid4())
        record = RunRecord(
            id=run_id, task=task, status="running", input_hash=text_hash(text), input_chars=len(text),
            params=params, config_hash=config_hash, started_at=_now(), reason="", cost=0.0,
        )
        self._write(lambda s: s.add(record))
        return run_id

    def finish_run(self, result: CascadeResult) -> None:
        def write(session: Session) -> None:
            run = session.get(RunRecord, result.run_id)
            run.status = result.outcome
            run.answer = result.answer
            run.confidence = result.confidence
            run.final_tier = result.tier_name
            run.reason = result.reason
            run.latency_ms = result.latency_ms
            run.cost = result.cost
            run.finished_at = _now()
            _replace_attempts(session, run.id, result.attempts)

        self._write(write)

    def fail_run(self, run_id: str, error: BaseException, attempts: list[Attempt], latency_ms: float) -> None:
        def write(session: Session) -> None:
            run = session.get(RunRecord, run_id)
            run.status = "failed"
            run.error_type = type(error).__name__
            run.error = getattr(error, "message", str(error))
            run.reason = f"failed: {run.error}"
            run.latency_ms = latency_ms
            run.cost = sum(a.cost for a in attempts)
            run.finished_at = _now()
            _replace_attempts(session, run.id, attempts)

        self._write(write)

    def note_params(self, run_id: str, **values: Any) -> None:
        """Add facts learned after a run finished (e.g. the example it taught) to its parameters."""
        def write(session: Session) -> None:
            run = session.get(RunRecord, run_id)
            run.params = {**run.params, **values}

        self._write(write)

    def list_runs(self, limit: int = 20, task: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        query = select(RunRecord).order_by(RunRecord.started_at.desc()).limit(limit)
        if task:
            query = query.where(RunRecord.task == task)
        if status:
            query = query.where(RunRecord.status == status)
        with self._sessions() as session:
            return [_run_dict(r, with_attempts=False) for r in session.scalars(query)]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        query = select(RunRecord).where(RunRecord.id == run_id).options(selectinload(RunRecord.attempts))
        with self._sessions() as session:
            record = session.scalars(query).first()
            return _run_dict(record, with_attempts=True) if record else None

    def _write(self, change) -> None:
        try:
            with self._sessions.begin() as session:
                change(session)
        except SQLAlchemyError as exc:
            raise StorageError(f"audit store write failed at {_safe_url(self.url)}: {exc}") from None


def _make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL keeps a commit per run cheap; foreign keys are off by default in SQLite.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    return engine


def _safe_url(url: str) -> str:
    """The URL without its password, for error messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given minus nothing secret we can find
        return "<unparsable database URL>"


def _replace_attempts(session: Session, run_id: str, attempts: list[Attempt]) -> None:
    """Write a run's attempts; a resumed run re-writes its earlier ones. Plain statements: loading
    the old collection to diff it would double the audit's share of a run's time."""
    session.execute(delete(AttemptRecord).where(AttemptRecord.run_id == run_id))
    session.add_all([_attempt_record(run_id, seq, a) for seq, a in enumerate(attempts)])


def _attempt_record(run_id: str, seq: int, a: Attempt) -> AttemptRecord:
    record = AttemptRecord(run_id=run_id, seq=seq, **a.model_dump())
    if record.threshold is not None and not math.isfinite(record.threshold):
        record.threshold = None  # a calibration that escalates everything; its reason says so
    return record


def _run_dict(r: RunRecord, with_attempts: bool) -> dict[str, Any]:
    data = {c: getattr(r, c) for c in (
        "id", "task", "status", "answer", "confidence", "final_tier", "reason", "error_type", "error",
        "input_hash", "input_chars", "params", "config_hash", "latency_ms", "cost")}
    data["started_at"] = r.started_at.isoformat() if r.started_at else None
    data["finished_at"] = r.finished_at.isoformat() if r.finished_at else None
    if with_attempts:
        data["attempts"] = [
            {c.name: getattr(a, c.name) for c in AttemptRecord.__table__.columns if c.name not in ("id", "run_id")}
            for a in r.attempts
        ]
    return data
