"""SQLAlchemy models of batch jobs, on the audit log's metadata (one database, one Alembic history).

A job is a file of items for one task family. Each item is one row of the file, identified by
(job_id, seq): the unique constraint is what makes a result written twice stay one result. The
item keeps the run id of the audit run that holds its attempts; the id is chosen and stored
before the run starts, so an execution that dies mid-item leaves a run that the next delivery
restarts under the same id instead of an orphan left `running`. `job_item_runs` links every
audit run the job layer finished for the item (retries included).

The store that reads and writes these tables is orchestrator/jobs/store.py; the escalation
budget (share and spend caps) is orchestrator/jobs/budget.py.

Item status, in order:
    queued      waiting for tier 1 (phase 1)
    pending     tier 1 was not confident enough; waits for the escalation phase
    escalating  admitted within the job's budget; waits for the next tier (phase 2)
    done        final: an answer (accepted), or no acceptable answer (outcome needs_review)
    over_budget final: needed escalation, but the job's escalation budget was spent
    failed      final: the item's tries ran out (provider down, timeout...); retry-failed requeues it
    invalid     final: the row was malformed; never run
    cancelled   final: the job was cancelled before the item finished
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.audit.records import Base

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
    max_spend: Mapped[float | None] = mapped_column(Float, nullable=True)  # cap on the escalation spend; None: none
    estimated_spend: Mapped[float | None] = mapped_column(Float, nullable=True)  # of the admitted escalations
    total_items: Mapped[int] = mapped_column(Integer, default=0)
    invalid_items: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Which process dispatches and advances the job now (epoch seconds): one at a time.
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # e.g. the budget decision
    api_key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the API key that submitted it


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
    run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # audit run of this try / the result
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the cascade's outcome
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    tier1_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)  # orders admission
    tier_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    escalation_cost: Mapped[float | None] = mapped_column(Float, nullable=True)  # phase 2: attempts past tier 1
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)  # summed over phases
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobItemRunRecord(Base):
    """Every audit run the job layer finished for a job item (a retried item has several)."""

    __tablename__ = "job_item_runs"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("job_items.id", ondelete="CASCADE"), index=True)
    phase: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))  # the run's outcome as the job layer saw it
