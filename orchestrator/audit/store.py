"""The audit store: every accepted task leaves a run record with all its attempts, also on failure."""

from __future__ import annotations

import hashlib
import math
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from sqlalchemy import and_, create_engine, delete, event, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

import migrations
from agents.errors import InvalidInputError, RunConflictError, StorageError
from agents.secrets import scrub
from agents.results import Attempt, CascadeResult

from orchestrator.audit import chain as audit_chain
from orchestrator.audit.caller import current_caller
from orchestrator.audit.records import AttemptRecord, AuditLogEntry, ReviewRecord, RunRecord, WorkflowEventRecord

# The workflow run whose step is running in this context: runs started meanwhile are its children.
# A context variable, so Cascade.ask/contract/fraud need no workflow parameter of their own.
_PARENT_RUN: ContextVar[str | None] = ContextVar("parent_run", default=None)


@contextmanager
def child_runs_of(parent_run_id: str) -> Iterator[None]:
    """Runs started inside this block record `parent_run_id` as their parent (a workflow step)."""
    token = _PARENT_RUN.set(parent_run_id)
    try:
        yield
    finally:
        _PARENT_RUN.reset(token)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditStore:
    """Writes and reads run records. Migrates its database to the current schema on open.

    Every write also appends to the tamper-evident ledger in the same transaction (see
    orchestrator/audit/chain.py); `verify` checks it. Input text is never stored, only its hash."""

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

    def start_run(self, task: str, text: str, params: dict[str, Any], config_hash: str,
                  run_id: str | None = None) -> str:
        """Record an accepted task before any model runs, so a crash still leaves a trace.

        A caller may choose the run id (the batch job layer does, per item, so that an item whose
        worker died mid-run reuses its run on the next delivery). If that run exists and is still
        `running` for the same task and input, it is restarted: its attempts are cleared, its
        parameters and start time replaced, and the ledger gets a `run.restart` entry. Any other
        existing run with that id is a RunConflictError."""
        new_id = run_id or str(uuid.uuid4())
        digest = text_hash(text)

        def write(session: Session) -> str:
            run = session.get(RunRecord, new_id) if run_id else None
            if run is None:
                session.add(RunRecord(
                    id=new_id, task=task, status="running", input_hash=digest, input_chars=len(text),
                    params=params, config_hash=config_hash, started_at=_now(), reason="", cost=0.0,
                    api_key_id=current_caller(),
                    parent_run_id=_PARENT_RUN.get(),
                ))
                return "run.start"
            if run.status != "running":
                raise RunConflictError(f"run {new_id} is already {run.status}; only a run left running (its "
                                       "process died) can be restarted under the same id")
            if run.task != task or run.input_hash != digest:
                raise RunConflictError(f"run {new_id} is a running run of another input or task; a run id "
                                       "can only be reused for the same item")
            run.params, run.config_hash, run.input_chars, run.started_at = params, config_hash, len(text), _now()
            _replace_attempts(session, new_id, [])
            return "run.restart"

        self._write("run.start", new_id, write)
        return new_id

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

        self._write("run.finish", result.run_id, write)

    def fail_run(self, run_id: str, error: BaseException, attempts: list[Attempt], latency_ms: float) -> None:
        def write(session: Session) -> None:
            run = session.get(RunRecord, run_id)
            run.status = "failed"
            run.error_type = type(error).__name__
            run.error = scrub(getattr(error, "message", str(error)))  # a foreign exception may quote a key
            run.reason = f"failed: {run.error}"
            run.latency_ms = latency_ms
            run.cost = sum(a.cost for a in attempts)
            run.finished_at = _now()
            _replace_attempts(session, run.id, attempts)

        self._write("run.fail", run_id, write)

    def note_params(self, run_id: str, **values: Any) -> None:
        """Add facts learned after a run finished (e.g. the example it taught) to its parameters."""
        def write(session: Session) -> None:
            run = session.get(RunRecord, run_id)
            run.params = {**run.params, **values}

        self._write("run.note", run_id, write)

    def list_runs(self, limit: int = 20, task: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        query = select(RunRecord).order_by(RunRecord.started_at.desc()).limit(limit)
        if task:
            query = query.where(RunRecord.task == task)
        if status:
            query = query.where(RunRecord.status == status)
        with self._sessions() as session:
            return [_run_dict(r, with_attempts=False) for r in session.scalars(query)]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its attempts and its review (None if not reviewed)."""
        query = select(RunRecord).where(RunRecord.id == run_id).options(
            selectinload(RunRecord.attempts), selectinload(RunRecord.review))
        with self._sessions() as session:
            record = session.scalars(query).first()
            return _run_dict(record, with_attempts=True, with_review=True) if record else None

    # -- workflow runs ----------------------------------------------------------------------------

    def record_event(self, run_id: str, step: str, kind: str, *, child_run_id: str | None = None,
                     reviewer: str | None = None, detail: dict[str, Any] | None = None,
                     once: bool = False) -> bool:
        """Append an event to a workflow run (ledger kind workflow.event). With `once`, an event
        of this step and kind already recorded is not recorded again (a step re-executed after a
        resume or a crash); returns whether it was recorded."""
        if once and any(e["step"] == step and e["kind"] == kind for e in self.workflow_events(run_id)):
            return False

        def write(session: Session) -> None:
            seq = session.scalar(select(func.count()).where(WorkflowEventRecord.run_id == run_id))
            session.add(WorkflowEventRecord(run_id=run_id, seq=seq, step=step, kind=kind, child_run_id=child_run_id,
                                            reviewer=reviewer, detail=detail, at=_now()))

        self._write("workflow.event", run_id, write)
        return True

    def workflow_events(self, run_id: str) -> list[dict[str, Any]]:
        """A workflow run's events in order."""
        query = select(WorkflowEventRecord).where(WorkflowEventRecord.run_id == run_id) \
            .order_by(WorkflowEventRecord.seq, WorkflowEventRecord.id)
        with self._sessions() as session:
            return [{"seq": e.seq, "step": e.step, "kind": e.kind, "child_run_id": e.child_run_id,
                     "reviewer": e.reviewer, "detail": e.detail or {}, "at": audit_chain.utc_iso(e.at)}
                    for e in session.scalars(query)]

    def child_runs(self, run_id: str) -> list[dict[str, Any]]:
        """The runs a workflow run's steps made, oldest first, with their attempts and reviews."""
        query = select(RunRecord).where(RunRecord.parent_run_id == run_id).order_by(RunRecord.started_at) \
            .options(selectinload(RunRecord.attempts), selectinload(RunRecord.review))
        with self._sessions() as session:
            return [_run_dict(r, with_attempts=True, with_review=True) for r in session.scalars(query)]

    def set_workflow_status(self, run_id: str, status: str, answer: str | None = None, reason: str = "",
                            latency_ms: float | None = None) -> None:
        """A workflow run's state: running, paused (waiting for a person), completed or failed. Its
        cost is what its child runs cost."""
        def write(session: Session) -> None:
            run = session.get(RunRecord, run_id)
            run.status, run.answer, run.reason = status, answer, reason
            run.cost = session.scalar(select(func.coalesce(func.sum(RunRecord.cost), 0.0))
                                      .where(RunRecord.parent_run_id == run_id))
            if latency_ms is not None:
                run.latency_ms = latency_ms
            run.finished_at = _now() if status in ("completed", "failed") else None

        self._write("workflow.finish" if status in ("completed", "failed") else "run.status", run_id, write)

    # -- the ledger -------------------------------------------------------------------------------

    def verify(self, batch: int = 1000) -> dict[str, Any]:
        """Check the ledger and every run against it: {"ok", "entries_checked", "runs_checked",
        "head_seq", "head_hash", "broken"}; `broken` is the first broken record, {"seq" and/or
        "run_id", "table", "problem"}, or None."""
        try:
            return audit_chain.verify(self.engine, batch=batch)
        except SQLAlchemyError as exc:
            raise StorageError(f"audit store verify failed at {_safe_url(self.url)}: {exc}") from None

    def export(self, since: datetime | None = None, batch: int = 500) -> Iterator[dict[str, Any]]:
        """Runs started at or after `since` (naive means UTC), oldest first, each with its attempts,
        its review (or None) and `ledger_seq`/`ledger_hash` of its latest ledger entry."""
        last: tuple[datetime, str] | None = None
        while True:
            query = select(RunRecord).options(selectinload(RunRecord.attempts), selectinload(RunRecord.review)) \
                .order_by(RunRecord.started_at, RunRecord.id).limit(batch)
            if since is not None:
                query = query.where(RunRecord.started_at >= _as_utc(since))
            if last is not None:
                query = query.where(or_(RunRecord.started_at > last[0],
                                        and_(RunRecord.started_at == last[0], RunRecord.id > last[1])))
            try:
                with self._sessions() as session:
                    runs = list(session.scalars(query))
                    ids = [r.id for r in runs]
                    newest = select(func.max(AuditLogEntry.seq)).where(AuditLogEntry.run_id.in_(ids)) \
                        .group_by(AuditLogEntry.run_id)
                    ledger = {e.run_id: e for e in session.execute(
                        select(AuditLogEntry.run_id, AuditLogEntry.seq, AuditLogEntry.hash)
                        .where(AuditLogEntry.seq.in_(newest)))} if ids else {}
                    rows = [_run_dict(r, with_attempts=True, with_review=True) for r in runs]
            except SQLAlchemyError as exc:
                raise StorageError(f"audit store export failed at {_safe_url(self.url)}: {exc}") from None
            for row in rows:
                entry = ledger.get(row["id"])
                row["ledger_seq"], row["ledger_hash"] = (entry.seq, entry.hash) if entry else (None, None)
                yield row
            if len(runs) < batch:
                return
            last = (runs[-1].started_at, runs[-1].id)

    # -- human review -----------------------------------------------------------------------------

    def review_queue(self, task: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Runs with status needs_review and no review yet, oldest first, with their attempts."""
        query = (select(RunRecord).outerjoin(ReviewRecord, ReviewRecord.run_id == RunRecord.id)
                 .where(RunRecord.status == "needs_review", ReviewRecord.run_id.is_(None))
                 .order_by(RunRecord.started_at, RunRecord.id).limit(limit)
                 .options(selectinload(RunRecord.attempts)))
        if task:
            query = query.where(RunRecord.task == task)
        with self._sessions() as session:
            return [_run_dict(r, with_attempts=True) for r in session.scalars(query)]

    def resolve_review(self, run_id: str, answer: str, reviewer: str, note: str = "") -> dict[str, Any]:
        """Record a person's answer for a needs_review run, once (the run's status stays
        needs_review; see ReviewRecord). Ledger entry kind: review.resolve."""
        answer, reviewer, note = (answer or "").strip(), (reviewer or "").strip(), (note or "").strip()
        if not answer:
            raise InvalidInputError(f"a review of run {run_id} needs a non-empty answer")
        if not reviewer:
            raise InvalidInputError(f"a review of run {run_id} needs the reviewer's name")
        review: dict[str, Any] = {}

        def write(session: Session) -> None:
            run = session.get(RunRecord, run_id)
            if run is None:
                raise InvalidInputError(f"no run {run_id} in the audit store; see `cascade review list`")
            done = session.get(ReviewRecord, run_id)
            if done is not None:
                raise InvalidInputError(f"run {run_id} was already resolved by {done.reviewer} at "
                                        f"{audit_chain.utc_iso(done.resolved_at)} (answer {done.answer!r})")
            if run.status != "needs_review":
                raise InvalidInputError(f"run {run_id} is {run.status}, not needs_review; only runs waiting for "
                                        "review can be resolved")
            labels = (run.params or {}).get("labels") or []
            if labels and answer not in labels:
                raise InvalidInputError(f"answer {answer!r} is not one of run {run_id}'s labels {labels}")
            record = ReviewRecord(run_id=run_id, answer=answer, reviewer=reviewer, note=note, resolved_at=_now())
            session.add(record)
            review.update(_review_dict(record))

        self._write("review.resolve", run_id, write)
        return review

    def _write(self, kind: str, run_id: str, change: Callable[[Session], str | None]) -> None:
        """One transaction: take the ledger head first, change the run, append its ledger entry
        (of the kind `change` returns, if it returns one)."""
        try:
            with self._sessions.begin() as session:
                head = audit_chain.lock_head(session)
                kind = change(session) or kind
                audit_chain.append_run_entries(session, [run_id], kind, head)
        except SQLAlchemyError as exc:
            raise StorageError(f"audit store write failed at {_safe_url(self.url)}: {exc}") from None


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = migrations.sqlite_engine(url, pool_pre_ping=True)  # WAL mode was set by migrations.upgrade

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # Per-connection settings: a commit per run stays cheap; foreign keys are off by default.
        cursor = dbapi_connection.cursor()
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
    record.checks = record.checks or None  # attempts without checks keep the pre-0006 row shape
    if record.threshold is not None and not math.isfinite(record.threshold):
        record.threshold = None  # a calibration that escalates everything; its reason says so
    return record


def _as_utc(value: datetime) -> datetime:
    """Aware and in UTC: SQLite stores a datetime's wall-clock fields as given (naive means UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _review_dict(r: ReviewRecord) -> dict[str, Any]:
    return {"run_id": r.run_id, "answer": r.answer, "reviewer": r.reviewer, "note": r.note,
            "resolved_at": audit_chain.utc_iso(r.resolved_at)}


def _run_dict(r: RunRecord, with_attempts: bool, with_review: bool = False) -> dict[str, Any]:
    data = {c: getattr(r, c) for c in (
        "id", "task", "status", "answer", "confidence", "final_tier", "reason", "error_type", "error",
        "input_hash", "input_chars", "params", "config_hash", "latency_ms", "cost", "api_key_id", "parent_run_id")}
    # UTC with its offset on either database (SQLite gives naive datetimes back, PostgreSQL the session's zone)
    data["started_at"] = audit_chain.utc_iso(r.started_at) if r.started_at else None
    data["finished_at"] = audit_chain.utc_iso(r.finished_at) if r.finished_at else None
    if with_attempts:
        data["attempts"] = [
            {c.name: getattr(a, c.name) for c in AttemptRecord.__table__.columns if c.name not in ("id", "run_id")}
            for a in r.attempts
        ]
        for a in data["attempts"]:
            a["redactions"] = a["redactions"] or {}  # None on rows written before migration 0004
            a["checks"] = a["checks"] or []  # None: no check ran (or a row written before migration 0006)
    if with_review:
        data["review"] = _review_dict(r.review) if r.review else None
    return data
