"""The job store: every read and write of the batch job tables (orchestrator/jobs/records.py).

Writes that record a result are conditional on the item's status, so a result written twice (a
re-delivered task) stays one. Writes that change audit runs (closing paused or abandoned runs)
take the audit ledger's head first and append one ledger entry per changed run, in the same
transaction, like every audit write.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from agents.errors import StorageError

from orchestrator.audit.sql import SqlStore
from orchestrator.audit.chain import append_run_entries, lock_head
from orchestrator.audit.records import AttemptRecord, RunRecord
from orchestrator.jobs.budget import FREE, Candidate, EscalationPrice, plan_admission, spend_note
from orchestrator.jobs.records import FINAL_ITEM_STATUSES, JobItemRecord, JobItemRunRecord, JobRecord


def _now() -> datetime:
    return datetime.now(timezone.utc)


class JobStore(SqlStore):
    """Jobs and job items in the audit database (migrated on open, like the audit store)."""

    NAME = "job store"

    # -- loading ---------------------------------------------------------------------------------

    def create_job(self, task: str, mode: str, source: str, params: dict, share: float,
                   max_spend: float | None = None, api_key_id: str | None = None) -> str:
        job_id = str(uuid.uuid4())
        with self._tx() as s:
            s.add(JobRecord(id=job_id, task=task, mode=mode, status="loading", phase=1, source=source,
                            params=params, max_escalation_share=share, max_spend=max_spend, created_at=_now(),
                            api_key_id=api_key_id))
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

    def cost_and_latencies(self, job_id: str) -> tuple[float, float, list[float]]:
        """(cost of the items' runs, actual escalation spend, latencies of the finished items)."""
        with self._tx() as s:
            cost, spend = s.execute(select(func.coalesce(func.sum(JobItemRecord.cost), 0.0),
                                           func.coalesce(func.sum(JobItemRecord.escalation_cost), 0.0))
                                    .where(JobItemRecord.job_id == job_id)).one()
            latencies = list(s.scalars(select(JobItemRecord.latency_ms).where(
                JobItemRecord.job_id == job_id, JobItemRecord.latency_ms.is_not(None),
                JobItemRecord.status.in_(("done", "over_budget")))))
        return float(cost or 0.0), float(spend or 0.0), latencies

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

    def payloads(self, item_ids: list[int]) -> list[tuple[str, dict]]:
        """(task, payload) of the given items that have one: what an executor embeds in one batch."""
        with self._tx() as s:
            rows = s.execute(select(JobRecord.task, JobItemRecord.payload).join(
                JobRecord, JobRecord.id == JobItemRecord.job_id).where(JobItemRecord.id.in_(item_ids)))
            return [(task, payload) for task, payload in rows if payload]

    def item_runs(self, item_id: int) -> list[dict[str, Any]]:
        with self._tx() as s:
            return [{"run_id": r.run_id, "phase": r.phase, "outcome": r.outcome} for r in
                    s.scalars(select(JobItemRunRecord).where(JobItemRunRecord.item_id == item_id))]

    # -- the item code path ----------------------------------------------------------------------

    def start_item(self, item_id: int, expected: str) -> dict[str, Any] | None:
        """Claim an item for one execution: None when it is no longer `expected` (already done by an
        earlier delivery, cancelled...), so a re-delivered task does nothing.

        Also fixes the audit run this execution uses, before it starts, and returns it with its
        status (None: not started yet): the item's run unless there is none or it failed, in which
        case a new id. So an execution that died mid-run leaves its run to the next delivery, which
        restarts it (status running), resumes it (pending, phase 2), or takes its recorded result
        (it finished, but the item's result was not written). A workflow item keeps its failed
        run too: resuming a failed workflow retries only its failed step."""
        with self._tx() as s:
            item = s.scalars(select(JobItemRecord).where(JobItemRecord.id == item_id).with_for_update()).first()
            if item is None or item.status != expected:
                return None
            job = s.get(JobRecord, item.job_id)
            if job.status in ("cancelled", "done"):
                return None
            run_status = s.scalar(select(RunRecord.status).where(RunRecord.id == item.run_id)) if item.run_id else None
            if item.run_id is None or (run_status == "failed" and job.task != "workflow"):
                item.run_id, run_status = str(uuid.uuid4()), None
            item.tries += 1
            item.dispatched_at = item.started_at = time.time()
            return {"id": item.id, "job_id": item.job_id, "task": job.task, "params": job.params,
                    "payload": item.payload, "run_id": item.run_id, "run_status": run_status,
                    "latency_ms": item.latency_ms, "api_key_id": job.api_key_id}

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

    def admit(self, job_id: str, price: EscalationPrice = FREE) -> str | None:
        """Phase 1 -> 2, once: admit the pending items within the job's escalation budget (least
        confident first, while both the share cap and the spend cap hold; see job_budget.py); the
        others end `over_budget`, saying which cap stopped them. `price` is the next tier's.
        Returns the budget note."""
        with self._tx() as s:
            moved = s.execute(update(JobRecord).where(JobRecord.id == job_id, JobRecord.phase == 1)
                              .values(phase=2))
            if moved.rowcount != 1:
                return None
            job = s.get(JobRecord, job_id)
            share = job.max_escalation_share
            mine = JobItemRecord.job_id == job_id
            valid = s.scalar(select(func.count()).where(mine, JobItemRecord.status != "invalid")) or 0
            already = s.scalar(select(func.count()).where(mine, JobItemRecord.escalated.is_(True))) or 0
            actual = s.scalar(select(func.coalesce(func.sum(JobItemRecord.escalation_cost), 0.0)).where(mine)) or 0.0
            spent = max(job.estimated_spend or 0.0, actual)  # earlier admissions (a retry-failed rerun)
            cap = math.floor(share * valid + 1e-9)
            tier1 = and_(AttemptRecord.run_id == JobItemRecord.run_id, AttemptRecord.seq == 0)
            pending = [Candidate(*row) for row in s.execute(
                select(JobItemRecord.id, JobItemRecord.run_id, JobItemRecord.reason, AttemptRecord.tokens_in,
                       AttemptRecord.tokens_out).outerjoin(AttemptRecord, tier1)
                .where(mine, JobItemRecord.status == "pending")
                .order_by(JobItemRecord.tier1_confidence.is_(None).desc(), JobItemRecord.tier1_confidence,
                          JobItemRecord.seq))]
            plan = plan_admission(pending, max(0, cap - already), price, job.max_spend, spent)
            for chunk in _chunks([p.id for p in plan.admitted], 500):
                s.execute(update(JobItemRecord).where(JobItemRecord.id.in_(chunk))
                          .values(status="escalating", escalated=True, dispatched_at=None))
            budget = f"the job may escalate {share:g} of its {valid} items ({cap})"
            if plan.over:
                now = _now()
                s.execute(update(JobItemRecord), [
                    {"id": p.id, "status": "over_budget", "outcome": "over_budget", "answer": None,
                     "confidence": None, "tier_name": None, "finished_at": now,
                     "reason": f"{plan.over_reason(p, budget, job.max_spend, spent, price)}; tier 1: {p.reason}"}
                    for p in plan.over])
                which = (f"the spend cap {job.max_spend:g}" if plan.stopped_by == "spend" else budget)
                self._close_runs(s, [p.run_id for p in plan.over if p.run_id], "pending", "needs_review",
                                 f"needs escalation, over budget: {which} (batch job {job_id})")
            if plan.admitted:
                job.estimated_spend = None if plan.estimated is None else spent + plan.estimated
            job.note = (f"escalation budget: {len(pending)} item(s) needed escalation, {len(plan.admitted)} admitted, "
                        f"{len(plan.over)} over budget" + (" (stopped by the spend cap)" if plan.stopped_by == "spend"
                                                           else "")
                        + f"; {budget}, {already} escalated before; "
                        + spend_note(plan, price, job.max_spend, spent))
            return job.note

    @staticmethod
    def _close_runs(s: Session, run_ids: list[str], status: str, new_status: str, reason: str) -> list[str]:
        """Set the audit runs among `run_ids` that are in `status` to `new_status` with `reason`:
        the ledger's head first, then one `run.status` ledger entry per changed run."""
        if not run_ids:
            return []
        head = lock_head(s)  # the audit ledger's lock before any run row's
        closed: list[str] = []
        for chunk in _chunks(run_ids, 500):
            closed += s.execute(update(RunRecord).where(RunRecord.id.in_(chunk), RunRecord.status == status)
                                .values(status=new_status, finished_at=_now(), reason=reason)
                                .returning(RunRecord.id)).scalars().all()
        append_run_entries(s, closed, "run.status", head)
        return closed

    def finish_job(self, job_id: str) -> bool:
        """Mark the job done. An audit run of its items still `running` now was abandoned (its
        execution died and no later one restarted it; this should not happen, as the next delivery
        of an item reuses its run): it is closed as failed, saying so."""
        with self._tx() as s:
            done = s.execute(update(JobRecord).where(JobRecord.id == job_id, JobRecord.status.in_(("queued", "running")))
                             .values(status="done", finished_at=_now(), lease_owner=None, lease_until=None))
            if done.rowcount != 1:
                return False
            running = list(s.scalars(select(RunRecord.id).join(JobItemRecord, JobItemRecord.run_id == RunRecord.id)
                                     .where(JobItemRecord.job_id == job_id, RunRecord.status == "running")))
            self._close_runs(s, running, "running", "failed",
                             f"failed: abandoned: batch job {job_id} finished while this run was unfinished")
            return True

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
            self._close_runs(s, runs, "pending", "needs_review", f"batch job {job_id} cancelled before escalation")
            return cancelled.rowcount

    def retry_failed(self, job_id: str) -> int:
        """Requeue a finished job's failed items from tier 1 (a new audit run each, see start_item;
        a workflow item resumes its failed workflow run)."""
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

