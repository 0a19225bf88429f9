"""Batch jobs: a file of items for one task, run in two phases, embedded or on Celery workers.

    jobs = Jobs.from_config()                       # same settings as Cascade.from_config
    job_id = jobs.submit("messages.jsonl", "classify", labels=["spam", "ham"])
    jobs.run(job_id)                                # embedded: this process is the executor
    jobs.status(job_id); jobs.results(job_id); jobs.cancel(job_id); jobs.retry_failed(job_id)

Phase 1 runs tier 1 over every item (`Cascade.run(..., stop_after_tier=0)`); an item that
would escalate is paused (`pending`). When no phase-1 item is left, the job's escalation budget
(`max_escalation_share` of its valid items, least confident first) admits pending items to
phase 2 (`Cascade.run(..., resume_run_id=...)`: the same audit run continues on the next tier);
the rest end `over_budget`, with a reason saying so. A job may also cap its escalation spend
(`max_spend`): admission then also stops where the estimated cost of the admitted escalations
would pass it (orchestrator/jobs/budget.py). No expensive call is made before that.

Each item's audit run id is fixed on the item row before the run starts (`JobStore.start_item`)
and passed to `Cascade.run(..., run_id=...)`: an execution killed mid-item leaves a `running` run
that the next delivery restarts under the same id, so a finished job leaves no run `running`.

One item code path: `Jobs.process_item` and `Jobs.handle_failure` are what the embedded executor
(`Jobs.run`) calls in-process and what the Celery task (workers/tasks.py) calls per message;
`Jobs.advance` (dispatch the next items in flight, re-send lost ones, move the phase, finish the
job) is driven by the embedded loop or by a sweeper thread in each worker. The database is the
source of truth: the broker only carries item ids, so a lost message or a killed worker only
delays an item until its lease (`batch_item_lease_s`) runs out and it is sent again. Results are
written only if the item is still in the state the execution started from, so a re-delivered
task leaves one result.

Input files: see `orchestrator/jobs/input.py` (one item per row; formats per task family).

A `workflow` job (`submit(path, "workflow", workflow="support-triage", options={...})`) runs the
whole registered workflow per item in phase 1, its run being the item's run; its steps escalate
inside their own cascade runs, so the escalation budget and phase 2 do not apply (see
`orchestrator/jobs/workflow_items.py`: outcomes, re-delivery).

The input text of each item is kept in the job store (`job_items.payload`) until the job is
deleted; the audit log itself keeps only a hash of it.
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError

from agents.errors import (CascadeError, InvalidInputError, InvalidOutputError, ModelFileError, RunConflictError,
                           StorageError, UserError)
from agents.results import Attempt, CascadeResult

from orchestrator.audit.caller import acting_as, current_caller
from orchestrator.jobs import results as job_results
from orchestrator.core.config import Settings, load_settings
from orchestrator.jobs.budget import escalation_price, job_caps
from orchestrator.jobs.input import check_file, read_rows, row_format
from orchestrator.jobs.records import FINAL_ITEM_STATUSES, JobItemRecord
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.workflow_items import TASK as WORKFLOW_TASK, process_workflow_item

_LOAD_CHUNK = 1000
Dispatch = Callable[[int, str], None]  # (item id, the status it is expected in) -> hand it to an executor


class Jobs:
    """The batch SDK over one job store; builds its Cascade (and loads models) only to run items."""

    def __init__(self, settings: Settings, cascade: Any = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(settings.audit_url)
        self._cascade = cascade
        self._owns_cascade = cascade is None
        self._workflows = None

    @classmethod
    def from_config(cls, config_file: str | Path | None = None, *, cascade: Any = None, **overrides: Any) -> "Jobs":
        return cls(load_settings(config_file, **overrides), cascade=cascade)

    def cascade(self):
        """The Cascade that runs items: built once per process, so each model loads once."""
        if self._cascade is None:
            from orchestrator.core.cascade import Cascade

            self._cascade = Cascade(self.settings)
        return self._cascade

    def workflows(self):
        """The Workflows of workflow items: one per process, its checkpointer connection reused."""
        if self._workflows is None:
            from orchestrator.workflows import Workflows
            self._workflows = Workflows(self.cascade())
        return self._workflows

    def close(self) -> None:
        if self._workflows is not None:
            self._workflows.close()
        if self._cascade is not None and self._owns_cascade:
            self._cascade.close()
        self.store.close()

    def __enter__(self) -> "Jobs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- submitting -------------------------------------------------------------------------------

    def submit(self, path: str | Path, task: str, *, labels: list[str] | None = None,
               max_escalation_share: float | None = None, max_spend: float | None = None,
               mode: str | None = None, input_format: str | None = None, api_key_id: str | None = None,
               workflow: str | None = None, options: dict[str, Any] | None = None) -> str:
        """Load a JSONL or CSV file as a job (streamed, in chunks) and return its id. The file is
        checked first (task, size, format, header); a malformed row becomes an `invalid` item. The
        job becomes visible to executors only once every row is stored. `max_spend` caps the
        estimated cost of the job's escalations (default `batch_max_spend`: none). The audit runs of
        its items record `api_key_id` as the key that asked (the HTTP service passes the caller's).
        Task "workflow" runs the registered `workflow` with `options` on each row's text (both
        checked here, before the job exists); it has no escalation phase, so no budget."""
        path = Path(path)
        spec = row_format(task)
        params = spec.job_params(labels, workflow, options)
        mode = mode or self.settings.batch_mode
        if mode not in ("embedded", "distributed"):
            raise InvalidInputError(f"unknown batch mode {mode!r}; use embedded or distributed")
        if task != WORKFLOW_TASK:
            share, max_spend = job_caps(self.settings, max_escalation_share, max_spend)
        elif max_escalation_share is not None or max_spend is not None:
            raise InvalidInputError("a workflow job has no escalation budget: each step escalates inside its own "
                                    "cascade run; give no max escalation share or max spend")
        else:
            share = 1.0  # nothing to cap: no item of a workflow job waits for an escalation phase
        fmt = check_file(path, int(self.settings.batch_max_file_mb * 2**20), input_format)
        rows = read_rows(path, fmt, task, params, int(self.settings.batch_max_row_kb * 1024))
        job_id = self.store.create_job(task, mode, str(path), params, share, max_spend, api_key_id)
        total = invalid = 0
        try:
            chunk: list[dict[str, Any]] = []
            for row in rows:
                total += 1
                invalid += row.payload is None
                chunk.append({"seq": row.seq, "external_id": row.external_id, "payload": row.payload, "raw": row.raw,
                              "status": "queued" if row.payload is not None else "invalid",
                              "outcome": None if row.payload is not None else "invalid", "error": row.error})
                if len(chunk) >= _LOAD_CHUNK:
                    self.store.add_items(job_id, chunk)
                    chunk = []
            if chunk:
                self.store.add_items(job_id, chunk)
            if total == 0:
                raise InvalidInputError(f"input file {path} has no rows, only blank lines")
        except BaseException:
            self.store.delete_job(job_id)
            raise
        self.store.finish_loading(job_id, total, invalid)
        return job_id

    # -- reading ----------------------------------------------------------------------------------

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        if job is None:
            raise InvalidInputError(f"no batch job with id {job_id}")
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        """The job summary (see `job_results.job_status`)."""
        return job_results.job_status(self.store, self._job(job_id))

    def results(self, job_id: str) -> Iterator[dict[str, Any]]:
        """One result per row of the input, in row order (streamed from the store)."""
        self._job(job_id)
        return job_results.item_results(self.store, job_id)

    def write_results(self, job_id: str, out: TextIO, fmt: str = "jsonl") -> int:
        """The job's results to `out` as JSON lines or CSV; returns how many rows were written."""
        return job_results.write_rows(self.results(job_id), out, fmt)

    # -- operator actions -------------------------------------------------------------------------

    def cancel(self, job_id: str) -> int:
        """Cancel a job; returns how many unfinished items were cancelled."""
        job = self._job(job_id)
        if job["status"] in ("done", "cancelled"):
            raise InvalidInputError(f"job {job_id} is already {job['status']}; nothing to cancel")
        return self.store.cancel(job_id)

    def retry_failed(self, job_id: str) -> int:
        """Requeue a finished job's failed items; run the job again (`run` or a worker) to process them."""
        job = self._job(job_id)
        if job["status"] != "done":
            raise InvalidInputError(f"job {job_id} is {job['status']}; retry its failed items once it is done")
        return self.store.retry_failed(job_id)

    # -- the one item code path -------------------------------------------------------------------

    def process_item(self, item_id: int, expected: str) -> str:
        """Run one item's phase: tier 1 for a `queued` item, the rest of the ladder for an
        `escalating` one, the whole workflow for a workflow job's (`workflow_items`). Returns the
        item's new status, or "skipped" when it is no longer `expected` (a re-delivered message).
        Errors propagate to `handle_failure`.

        The audit run is the one `start_item` fixed: a new one, or the run an earlier execution
        of this item left behind: restarted if it was left `running`, resumed if it is the paused
        run of phase 1, taken as it is if it finished (the execution died before writing the item)."""
        item = self.store.start_item(item_id, expected)
        if item is None:
            return "skipped"
        if item["task"] == WORKFLOW_TASK:
            return process_workflow_item(self.store, self.workflows(), item_id, expected, item)
        phase = 1 if expected == "queued" else 2
        cascade = self.cascade()
        task, payload, run_id, run_status = item["task"], item["payload"], item["run_id"], item["run_status"]
        try:
            with acting_as(item["api_key_id"] or current_caller()):  # the key that submitted the job
                if run_status in ("accepted", "needs_review") or (phase == 1 and run_status == "pending"):
                    result = recorded_result(cascade.audit.get_run(run_id))
                elif phase == 2 and run_status == "pending":
                    result = cascade.run(task, resume_run_id=run_id, **payload)
                else:  # a new run, or one a dead execution left running: the whole phase, under this id
                    result = cascade.run(task, run_id=run_id, stop_after_tier=0 if phase == 1 else None, **payload)
        except RunConflictError:
            return "skipped"  # another execution of this item finished the same run meanwhile
        except CascadeError as exc:
            if exc.run_id:
                self.store.link_run(item_id, exc.run_id, phase, "failed")
            raise
        self.store.link_run(item_id, result.run_id, phase, result.outcome)
        status = "pending" if result.outcome == "pending" else "done"
        values: dict[str, Any] = {
            "status": status, "run_id": result.run_id, "outcome": None if status == "pending" else result.outcome,
            "answer": result.answer, "confidence": result.confidence, "tier_name": result.tier_name,
            "reason": result.reason, "error": None, "cost": result.cost,
            "latency_ms": func.coalesce(JobItemRecord.latency_ms, 0.0) + result.latency_ms,
        }
        if phase == 1:
            values["tier1_confidence"] = result.attempts[0].confidence if result.attempts else None
        else:
            values["escalation_cost"] = sum(a.cost for a in result.attempts if a.tier_index > 0)
        wrote = self.store.finish_item(item_id, expected, values)
        return status if wrote else "skipped"

    def handle_failure(self, item_id: int, expected: str, exc: BaseException, retries: int) -> float | None:
        """After `process_item` raised on its `retries`-th retry: the delay before the next try, or
        None when the item was marked failed (input or configuration errors fail at once)."""
        kind = failure_kind(exc)
        limit = {"storage": self.settings.batch_storage_retries, "fatal": 0}.get(kind, self.settings.batch_max_retries)
        if retries < limit:
            base = max(self.settings.batch_retry_backoff_s, 0.5 if kind == "storage" else 0.0)
            delay = min(60.0, base * 2 ** retries) * random.uniform(0.75, 1.25)
            try:
                self.store.touch(item_id, time.time() + delay + 5)
            except StorageError:
                pass  # the database is what is down; the lease re-sends the item if this try is lost
            return delay
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        reason = f"{type(exc).__name__}: {message}" + (f" (gave up after {retries + 1} tries)" if limit else "")
        self.store.finish_item(item_id, expected, {"status": "failed", "outcome": "failed", "error": reason,
                                                   "reason": f"failed: {reason}",
                                                   **({"run_id": exc.run_id} if getattr(exc, "run_id", None) else {})})
        return None

    # -- executors --------------------------------------------------------------------------------

    def advance(self, job_id: str, dispatch: Dispatch, owner: str, *, lease_s: float,
                stale_before: float) -> str:
        """One step of a job: hand out the next items (and re-send stale ones), or move it from
        phase 1 to 2 (the budget), or finish it. Returns the job's status ("busy": another
        process holds the job's lease)."""
        if not self.store.acquire_lease(job_id, owner, lease_s):
            return "busy"
        for _ in range(3):  # at most: dispatch, or phase 1 -> 2 then dispatch, or finish
            job = self._job(job_id)
            if job["status"] not in ("queued", "running"):
                return job["status"]
            self.store.mark_running(job_id)
            wanted = "queued" if job["phase"] == 1 else "escalating"
            ids, waiting = self.store.claim(job_id, wanted, self.settings.batch_window, stale_before)
            for n, item_id in enumerate(ids):
                try:
                    dispatch(item_id, wanted)
                except BaseException:
                    self.store.unclaim(ids[n:])
                    raise
            if waiting:
                return "running"
            if job["phase"] == 1 and job["task"] != WORKFLOW_TASK:  # a workflow job has no escalation phase
                self.store.admit(job_id, escalation_price(self.settings))
                continue
            self.store.finish_job(job_id)
        return self._job(job_id)["status"]

    def run(self, job_id: str, on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """The embedded executor: run (or resume) the job in this process, items one at a time,
        through the same item code path as a worker. Returns the job summary."""
        job = self._job(job_id)
        if job["status"] == "loading":
            raise InvalidInputError(f"job {job_id} is still loading its rows")
        owner = f"embedded:{socket.gethostname()}:{os.getpid()}"
        shown = 0.0
        try:
            while True:
                batch: list[tuple[int, str]] = []
                state = self.advance(job_id, lambda i, s: batch.append((i, s)), owner, lease_s=60.0,
                                     stale_before=time.time() + 1)
                if state == "busy":
                    raise UserError(f"job {job_id} is being run by another process (its lease renews every "
                                    "minute while it runs); wait for it, or for a minute after it stopped")
                if state not in ("queued", "running"):
                    break
                self._prefetch([item_id for item_id, expected in batch if expected == "queued"])
                for item_id, expected in batch:
                    self._run_inline(item_id, expected)
                    self.store.acquire_lease(job_id, owner, 60.0)
                    if on_progress and time.monotonic() - shown > 0.25:
                        on_progress(self.progress(job_id))
                        shown = time.monotonic()
        finally:
            self.store.release_lease(job_id, owner)
        summary = self.status(job_id)
        if on_progress:
            on_progress(self.progress(job_id))
        return summary

    def _prefetch(self, item_ids: list[int]) -> None:
        """Embed a window of tier-1 items for the encoder tiers in one call, not one by one."""
        groups: dict[tuple, list[str]] = {}
        for task, payload in self.store.payloads(item_ids) if item_ids else []:
            if task == WORKFLOW_TASK:
                continue  # a workflow's steps make their own calls, one item at a time
            labels = payload.get("labels")
            groups.setdefault((task, tuple(labels) if labels else None), []).append(payload["text"])
        for (task, labels), texts in groups.items():
            try:
                self.cascade().prefetch(task, texts, list(labels) if labels else None)
            except CascadeError:
                pass  # a bad item fails on its own path, with its own error

    def _run_inline(self, item_id: int, expected: str) -> None:
        retries = 0
        while True:
            try:
                self.process_item(item_id, expected)
                return
            except Exception as exc:  # noqa: BLE001  (every failure is recorded or retried)
                delay = self.handle_failure(item_id, expected, exc, retries)
                if delay is None:
                    return
                time.sleep(delay)
                retries += 1

    def progress(self, job_id: str) -> dict[str, Any]:
        """Cheap counts for a progress bar: finished, escalated, failed, total, status."""
        counts = self.store.counts(job_id)
        job = self.store.get_job(job_id) or {}
        return {"status": job.get("status"), "total": job.get("total_items", 0),
                "finished": sum(counts.get(s, 0) for s in FINAL_ITEM_STATUSES), "escalated": counts["escalated"],
                "failed": counts.get("failed", 0) + counts.get("invalid", 0),
                "over_budget": counts.get("over_budget", 0)}

    def wait(self, job_id: str, on_progress: Callable[[dict[str, Any]], None] | None = None, *,
             poll_s: float = 0.5, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait for workers to finish a distributed job (polls the store). Returns the summary."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            progress = self.progress(job_id)
            if on_progress:
                on_progress(progress)
            if progress["status"] in ("done", "cancelled"):
                return self.status(job_id)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout_s} s: {progress}")
            time.sleep(poll_s)


def recorded_result(run: dict[str, Any] | None) -> CascadeResult:
    """The result of an audit run as recorded (an execution finished it but died before writing
    the item's result)."""
    if run is None:
        raise StorageError("the item's audit run disappeared between two reads")
    return CascadeResult(run_id=run["id"], task=run["task"], outcome=run["status"], answer=run["answer"],
                         confidence=run["confidence"], tier_name=run["final_tier"], reason=run["reason"],
                         attempts=[Attempt.model_validate(a) for a in run["attempts"]],
                         latency_ms=run["latency_ms"] or 0.0, cost=run["cost"] or 0.0)


def failure_kind(exc: BaseException) -> str:
    """How an item's failure is handled: `fatal` fails it at once (bad input or configuration),
    `storage` retries long (the database is down), anything else (provider down, timeout,
    unexpected) retries with backoff up to batch_max_retries."""
    if isinstance(exc, (UserError, ModelFileError, InvalidOutputError)):
        return "fatal"
    if isinstance(exc, (StorageError, SQLAlchemyError)):
        return "storage"
    return "provider"
