"""SQLAlchemy models of batch jobs, on the audit log's metadata (one database, one Alembic history).

A job is a file of items for one task family. Each item is one row of the file, identified by
(job_id, seq): the unique constraint is what makes a result written twice stay one result. The
item keeps the run id of the audit run that holds its attempts; `job_item_runs` links every
audit run the job layer started for the item (retries included).

Item status, in order:
    queued      waiting for tier 1 (phase 1)
    pending     tier 1 was not confident enough; waits for the escalation phase
    escalating  admitted within the job's budget; waits for the next tier (phase 2)
    done        final: an answer (accepted), or no acceptable answer (outcome unresolved)
    over_budget final: needed escalation, but the job's escalation budget was spent
    failed      final: the item's tries ran out (provider down, timeout...); retry-failed requeues it
    invalid     final: the row was malformed; never run
    cancelled   final: the job was cancelled before the item finished
"""

from __future__ import annotations

import math
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        delete, func, insert, or_, select, update)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

import migrations
from agents.errors import StorageError

from .audit import _make_engine
from .audit_models import Base, RunRecord

FINAL_ITEM_STATUSES = ("done", "over_budget", "failed", "invalid", "cancelled")


class JobRecord(Base):
    """One batch job: a file of items for one task, run in two phases."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))  # embedded | distributed
    status: Mapped[str] = mapped_column(String(16), index=True)  # loading | queued | running | done | cancelled
    phase: Mapped[int] = mapped_column(Integer, default=1)  # 1: tier 1 over every item; 2: escalations
    source: Mapped[str] = mapped_column(Text)  # the input file's name, as given
    params: Mapped[dict] = mapped_column(JSON)  # job-level payload defaults, e.g. {"labels": [...]}
    max_escalation_share: Mapped[float] = mapped_column(Float)
    total_items: Mapped[int] = mapped_column(Integer, default=0)
    invalid_items: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Which process dispatches and advances the job now (epoch seconds): one at a time.
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # e.g. the budget decision


class JobItemRecord(Base):
    """One row of a job's input file and its result."""

    __tablename__ = "job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "seq", name="uq_job_items_job_seq"),
        Index("ix_job_items_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # data row number in the file, from 1
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)  # the row's own "id"
    payload: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the task input; None for invalid rows
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)  # an invalid row as read (truncated)
    status: Mapped[str] = mapped_column(String(16))
    dispatched_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch s, handed to an executor
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch s, last execution began
    tries: Mapped[int] = mapped_column(Integer, default=0)  # executions started, all phases
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)  # admitted past tier 1
    run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # audit run of the result
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the cascade's outcome
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    tier1_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)  # orders admission
    tier_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)  # summed over phases
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobItemRunRecord(Base):
    """Every audit run started for a job item (a retried item has several)."""

    __tablename__ = "job_item_runs"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("job_items.id", ondelete="CASCADE"), index=True)
    phase: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))  # the run's outcome as the job layer saw it


# ---------------------------------------------------------------------------------------------
# The job store: every read and write of the tables above. Writes that record a result are
# conditional on the item's status, so a result written twice (a re-delivered task) stays one.
# ---------------------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(timezone.utc)


class JobStore:
    """Jobs and job items in the audit database (migrated on open, like the audit store)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            migrations.upgrade(url)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open the job store at {_safe_url(url)}: {exc}") from None
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
            raise StorageError(f"job store failed at {_safe_url(self.url)}: {exc.__class__.__name__}: "
                               f"{getattr(exc, 'orig', None) or exc}") from None

    # -- loading ---------------------------------------------------------------------------------

    def create_job(self, task: str, mode: str, source: str, params: dict, share: float) -> str:
        job_id = str(uuid.uuid4())
        with self._tx() as s:
            s.add(JobRecord(id=job_id, task=task, mode=mode, status="loading", phase=1, source=source,
                            params=params, max_escalation_share=share, created_at=_now()))
        return job_id

    def add_items(self, job_id: str, rows: list[dict[str, Any]]) -> None:
        with self._tx() as s:
            s.execute(insert(JobItemRecord), [{"job_id": job_id, "tries": 0, "escalated": False, "cost": 0.0, **r}
                                               for r in rows])

    def finish_loading(self, job_id: str, total: int, invalid: int) -> None:
        with self._tx() as s:
            job = s.get(JobRecord, job_id)
            job.total_items, job.invalid_items = total, invalid
            job.status = "queued"

    def delete_job(self, job_id: str) -> None:
        with self._tx() as s:
            s.execute(delete(JobItemRecord).where(JobItemRecord.job_id == job_id))
            s.execute(delete(JobRecord).where(JobRecord.id == job_id))

    # -- reading ---------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._tx() as s:
            job = s.get(JobRecord, job_id)
            return None if job is None else {c.name: getattr(job, c.name) for c in JobRecord.__table__.columns}

    def active_job_ids(self, mode: str) -> list[str]:
        with self._tx() as s:
            return list(s.scalars(select(JobRecord.id).where(JobRecord.mode == mode,
                                                             JobRecord.status.in_(("queued", "running")))
                                  .order_by(JobRecord.created_at)))

    def counts(self, job_id: str) -> dict[str, int]:
        """Items per status, plus `escalated` (admitted past tier 1)."""
        with self._tx() as s:
            rows = s.execute(select(JobItemRecord.status, func.count()).where(JobItemRecord.job_id == job_id)
                             .group_by(JobItemRecord.status)).all()
            escalated = s.scalar(select(func.count()).where(JobItemRecord.job_id == job_id,
                                                            JobItemRecord.escalated.is_(True)))
        counts = {status: n for status, n in rows}
        counts["escalated"] = escalated or 0
        return counts

    def cost_and_latencies(self, job_id: str) -> tuple[float, list[float]]:
        with self._tx() as s:
            cost = s.scalar(select(func.coalesce(func.sum(JobItemRecord.cost), 0.0))
                            .where(JobItemRecord.job_id == job_id))
            latencies = list(s.scalars(select(JobItemRecord.latency_ms).where(
                JobItemRecord.job_id == job_id, JobItemRecord.latency_ms.is_not(None),
                JobItemRecord.status.in_(("done", "over_budget")))))
        return float(cost or 0.0), latencies

    def iter_items(self, job_id: str, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every item of the job in row order, read in chunks (keyset pagination)."""
        last = 0
        while True:
            with self._tx() as s:
                batch = list(s.scalars(select(JobItemRecord).where(JobItemRecord.job_id == job_id,
                                                                   JobItemRecord.seq > last)
                                       .order_by(JobItemRecord.seq).limit(chunk)))
            if not batch:
                return
            for item in batch:
                yield {c.name: getattr(item, c.name) for c in JobItemRecord.__table__.columns}
            last = batch[-1].seq

    def item_runs(self, item_id: int) -> list[dict[str, Any]]:
        with self._tx() as s:
            return [{"run_id": r.run_id, "phase": r.phase, "outcome": r.outcome} for r in
                    s.scalars(select(JobItemRunRecord).where(JobItemRunRecord.item_id == item_id))]

    # -- the item code path ----------------------------------------------------------------------

    def start_item(self, item_id: int, expected: str) -> dict[str, Any] | None:
        """Claim an item for one execution: None when it is no longer `expected` (already done by an
        earlier delivery, cancelled...), so a re-delivered task does nothing."""
        with self._tx() as s:
            item = s.get(JobItemRecord, item_id)
            if item is None or item.status != expected:
                return None
            job = s.get(JobRecord, item.job_id)
            if job.status in ("cancelled", "done"):
                return None
            item.tries += 1
            item.dispatched_at = item.started_at = time.time()
            return {"id": item.id, "job_id": item.job_id, "task": job.task, "payload": item.payload,
                    "run_id": item.run_id, "latency_ms": item.latency_ms}

    def link_run(self, item_id: int, run_id: str, phase: int, outcome: str) -> None:
        try:
            with self._tx() as s:
                existing = s.get(JobItemRunRecord, run_id)
                if existing is None:
                    s.add(JobItemRunRecord(run_id=run_id, item_id=item_id, phase=phase, outcome=outcome))
                else:
                    existing.outcome = outcome
        except StorageError:
            with self._tx() as s:  # a concurrent writer inserted the same link: update it
                s.execute(update(JobItemRunRecord).where(JobItemRunRecord.run_id == run_id).values(outcome=outcome))

    def finish_item(self, item_id: int, expected: str, values: dict[str, Any]) -> bool:
        """Write an item's result if it is still `expected`; False when another delivery wrote first."""
        if values.get("status") in FINAL_ITEM_STATUSES:
            values = {"finished_at": _now(), **values}
        with self._tx() as s:
            done = s.execute(update(JobItemRecord).where(JobItemRecord.id == item_id,
                                                         JobItemRecord.status == expected).values(**values))
            return done.rowcount == 1

    def touch(self, item_id: int, at: float) -> None:
        """Mark an item as handed out until `at` (a retry waiting for its backoff is not stale)."""
        with self._tx() as s:
            s.execute(update(JobItemRecord).where(JobItemRecord.id == item_id).values(dispatched_at=at))

    # -- dispatching and advancing ---------------------------------------------------------------

    def acquire_lease(self, job_id: str, owner: str, seconds: float) -> bool:
        """One process at a time dispatches and advances a job; a dead owner's lease runs out."""
        now = time.time()
        with self._tx() as s:
            done = s.execute(update(JobRecord).where(
                JobRecord.id == job_id,
                or_(JobRecord.lease_until.is_(None), JobRecord.lease_until < now, JobRecord.lease_owner == owner),
            ).values(lease_owner=owner, lease_until=now + seconds))
            return done.rowcount == 1

    def release_lease(self, job_id: str, owner: str) -> None:
        with self._tx() as s:
            s.execute(update(JobRecord).where(JobRecord.id == job_id, JobRecord.lease_owner == owner)
                      .values(lease_owner=None, lease_until=None))

    def mark_running(self, job_id: str) -> None:
        with self._tx() as s:
            s.execute(update(JobRecord).where(JobRecord.id == job_id, JobRecord.status == "queued")
                      .values(status="running", started_at=_now()))

    def claim(self, job_id: str, status: str, window: int, stale_before: float) -> tuple[list[int], int]:
        """Hand out items in `status` so that at most `window` are out at once, and return their
        ids and how many items are in `status` at all.

        An item handed out before `stale_before` and not finished is re-sent only when the job has
        stalled (no item of it started since `stale_before`): its message or its worker was lost.
        While items keep starting, a long broker queue is not mistaken for lost messages."""
        now = time.time()
        with self._tx() as s:
            base = (JobItemRecord.job_id == job_id, JobItemRecord.status == status)
            waiting = s.scalar(select(func.count()).where(*base)) or 0
            if waiting == 0:
                return [], 0
            last_start = s.scalar(select(func.max(JobItemRecord.started_at)).where(JobItemRecord.job_id == job_id))
            ids: list[int] = []
            if last_start is None or last_start < stale_before:
                ids = list(s.scalars(select(JobItemRecord.id).where(*base, JobItemRecord.dispatched_at < stale_before)
                                     .order_by(JobItemRecord.seq).limit(window)))
            out = s.scalar(select(func.count()).where(*base, JobItemRecord.dispatched_at.is_not(None))) or 0
            if window - out > 0:
                ids += list(s.scalars(select(JobItemRecord.id).where(*base, JobItemRecord.dispatched_at.is_(None))
                                      .order_by(JobItemRecord.seq).limit(window - out)))
            for chunk in _chunks(ids, 500):
                s.execute(update(JobItemRecord).where(JobItemRecord.id.in_(chunk)).values(dispatched_at=now))
            return ids, waiting

    def unclaim(self, item_ids: list[int]) -> None:
        with self._tx() as s:
            s.execute(update(JobItemRecord).where(JobItemRecord.id.in_(item_ids)).values(dispatched_at=None))

    def admit(self, job_id: str) -> str | None:
        """Phase 1 -> 2, once: admit the pending items within the job's escalation budget (least
        confident first); the others end `over_budget`, saying so. Returns the budget note."""
        with self._tx() as s:
            moved = s.execute(update(JobRecord).where(JobRecord.id == job_id, JobRecord.phase == 1)
                              .values(phase=2))
            if moved.rowcount != 1:
                return None
            job = s.get(JobRecord, job_id)
            share = job.max_escalation_share
            valid = s.scalar(select(func.count()).where(JobItemRecord.job_id == job_id,
                                                        JobItemRecord.status != "invalid")) or 0
            already = s.scalar(select(func.count()).where(JobItemRecord.job_id == job_id,
                                                          JobItemRecord.escalated.is_(True))) or 0
            cap = math.floor(share * valid + 1e-9)
            pending = s.execute(select(JobItemRecord.id, JobItemRecord.run_id, JobItemRecord.reason).where(
                JobItemRecord.job_id == job_id, JobItemRecord.status == "pending").order_by(
                JobItemRecord.tier1_confidence.is_(None).desc(), JobItemRecord.tier1_confidence,
                JobItemRecord.seq)).all()
            room = max(0, cap - already)
            admitted, over = pending[:room], pending[room:]
            for chunk in _chunks([p.id for p in admitted], 500):
                s.execute(update(JobItemRecord).where(JobItemRecord.id.in_(chunk))
                          .values(status="escalating", escalated=True, dispatched_at=None))
            budget = f"the job may escalate {share:g} of its {valid} items ({cap})"
            if over:
                now = _now()
                s.execute(update(JobItemRecord), [
                    {"id": p.id, "status": "over_budget", "outcome": "over_budget", "answer": None,
                     "confidence": None, "tier_name": None, "finished_at": now,
                     "reason": f"needs escalation, over budget: {budget}; tier 1: {p.reason}"} for p in over])
                for chunk in _chunks([p.run_id for p in over if p.run_id], 500):
                    s.execute(update(RunRecord).where(RunRecord.id.in_(chunk), RunRecord.status == "pending").values(
                        status="unresolved", finished_at=now,
                        reason=f"needs escalation, over budget: {budget} (batch job {job_id})"))
            job.note = (f"escalation budget: {len(pending)} item(s) needed escalation, {len(admitted)} admitted, "
                        f"{len(over)} over budget; {budget}, {already} escalated before")
            return job.note

    def finish_job(self, job_id: str) -> bool:
        with self._tx() as s:
            done = s.execute(update(JobRecord).where(JobRecord.id == job_id, JobRecord.status.in_(("queued", "running")))
                             .values(status="done", finished_at=_now(), lease_owner=None, lease_until=None))
            return done.rowcount == 1

    # -- operator actions ------------------------------------------------------------------------

    def cancel(self, job_id: str) -> int:
        """Cancel a job: its unfinished items end `cancelled`; paused audit runs are closed."""
        with self._tx() as s:
            moved = s.execute(update(JobRecord).where(JobRecord.id == job_id,
                                                      JobRecord.status.in_(("loading", "queued", "running")))
                              .values(status="cancelled", finished_at=_now(), lease_owner=None, lease_until=None))
            if moved.rowcount != 1:
                return 0
            open_items = (JobItemRecord.job_id == job_id, JobItemRecord.status.not_in(FINAL_ITEM_STATUSES))
            runs = list(s.scalars(select(JobItemRecord.run_id).where(*open_items, JobItemRecord.status == "pending",
                                                                     JobItemRecord.run_id.is_not(None))))
            cancelled = s.execute(update(JobItemRecord).where(*open_items).values(
                status="cancelled", outcome="cancelled", finished_at=_now(), reason="job cancelled"))
            for chunk in _chunks(runs, 500):
                s.execute(update(RunRecord).where(RunRecord.id.in_(chunk), RunRecord.status == "pending").values(
                    status="unresolved", finished_at=_now(), reason=f"batch job {job_id} cancelled before escalation"))
            return cancelled.rowcount

    def retry_failed(self, job_id: str) -> int:
        """Requeue a finished job's failed items from tier 1 (a new audit run each)."""
        with self._tx() as s:
            job = s.get(JobRecord, job_id)
            failed = (JobItemRecord.job_id == job_id, JobItemRecord.status == "failed")
            n = s.execute(update(JobItemRecord).where(*failed).values(
                status="queued", escalated=False, dispatched_at=None, outcome=None, answer=None, confidence=None,
                tier_name=None, reason=None, error=None, finished_at=None)).rowcount
            if n:
                job.status, job.phase, job.finished_at = "queued", 1, None
                job.lease_owner = job.lease_until = None
            return n


def _chunks(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"
