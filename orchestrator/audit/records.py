"""SQLAlchemy models of the audit log. The schema only grows, through Alembic revisions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class RunRecord(Base):
    """One task handed to the cascade, from acceptance to its final decision."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | accepted | needs_review | failed | pending
    input_hash: Mapped[str] = mapped_column(String(64), index=True)
    input_chars: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict] = mapped_column(JSON)  # task parameters, e.g. the label set
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_tier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    error_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    config_hash: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    # The API key that asked (orchestrator/access); None for SDK and CLI runs and rows before 0007.
    api_key_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    # A cascade run made by a workflow step names the workflow's run (itself a run, task "workflow")
    parent_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)

    attempts: Mapped[list["AttemptRecord"]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="AttemptRecord.seq"
    )
    review: Mapped["ReviewRecord | None"] = relationship(viewonly=True, uselist=False)


class AttemptRecord(Base):
    """One tier's attempt within a run; rejected attempts are kept with their cost and reason."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    tier_index: Mapped[int] = mapped_column(Integer)
    tier_name: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[str] = mapped_column(String(512))
    model_file_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_version: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    label_probs: Mapped[dict] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    raw_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    calibration: Mapped[str | None] = mapped_column(String(256), nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    redactions: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # entity type -> count; None before 0004
    checks: Mapped[list | None] = mapped_column(JSON, nullable=True)  # [{name, passed, score, reason}]; None: none ran

    run: Mapped[RunRecord] = relationship(back_populates="attempts")


class ReviewRecord(Base):
    """A person's decision on a needs_review run: at most one per run.

    Resolving a run does not change its status: `runs.status` stays what the cascade decided
    (needs_review) and this row says a person resolved it, with which answer. The review queue is
    therefore "needs_review runs without a review row"."""

    __tablename__ = "reviews"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    answer: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkflowEventRecord(Base):
    """One event of a workflow run, in order: a step done (with its child cascade run), a step
    failed, a pause for a person, a resume (with who resolved it), the finish (with the output).

    The events are part of the workflow run's ledger snapshot (orchestrator/audit/chain.py), so an
    edited or deleted event breaks `verify` like an edited attempt does."""

    __tablename__ = "workflow_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(256))  # the node, with its branch key for a fanned-out one
    kind: Mapped[str] = mapped_column(String(16))  # step | fail | pause | resume | finish
    child_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reviewer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditLogEntry(Base):
    """One append-only entry of the tamper-evident ledger (see orchestrator/audit/chain.py).

    Every write to runs, attempts or reviews appends one entry per changed run in the same
    transaction: `body` is the canonical JSON snapshot of the run after the write, and `hash` is
    sha256(prev_hash + canonical [seq, run_id, kind, body, created_at]). No foreign key to runs:
    the ledger outlives a deleted run, which is how `verify` notices the deletion."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 1, 2, 3... no gaps
    run_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # run.start | run.restart | run.finish | run.fail | run.note | run.status | review.resolve | run.import
    # | workflow.event | workflow.finish
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditChainHead(Base):
    """The ledger's one-row head (id 1): the last entry's seq and hash. Writers take it with an
    UPDATE first, which serialises them; it also makes a deleted last entry detectable."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_chain_head_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
