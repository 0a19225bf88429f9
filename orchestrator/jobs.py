"""Batch jobs: a file of items for one task, run in two phases, embedded or on Celery workers.

    jobs = Jobs.from_config()                       # same settings as Cascade.from_config
    job_id = jobs.submit("messages.jsonl", "classify", labels=["spam", "ham"])
    jobs.run(job_id)                                # embedded: this process is the executor
    jobs.status(job_id); jobs.results(job_id); jobs.cancel(job_id); jobs.retry_failed(job_id)

Phase 1 runs tier 1 over every item (`Cascade.run(..., stop_after_tier=0)`); an item that
would escalate is paused (`pending`). When no phase-1 item is left, the job's escalation budget
(`max_escalation_share` of its valid items, least confident first) admits pending items to
phase 2 (`Cascade.run(..., resume_run_id=...)`: the same audit run continues on the next tier);
the rest end `over_budget`, with a reason saying so. No expensive call is made before that.

One item code path: `Jobs.process_item` and `Jobs.handle_failure` are what the embedded executor
(`Jobs.run`) calls in-process and what the Celery task (workers/tasks.py) calls per message;
`Jobs.advance` (dispatch the next items in flight, re-send lost ones, move the phase, finish the
job) is driven by the embedded loop or by a sweeper thread in each worker. The database is the
source of truth: the broker only carries item ids, so a lost message or a killed worker only
delays an item until its lease (`batch_item_lease_s`) runs out and it is sent again. Results are
written only if the item is still in the state the execution started from, so a re-delivered
task leaves one result.

Input files, per task family:
classify
    JSONL: one object per line: {"id": optional string or number, "text": "...", "labels": ["a", "b"]}.
    CSV:   a header row naming the columns `text` (required), `id` and `labels` (optional); a
           `labels` cell holds the labels separated by "|" (e.g. `spam|ham`) or a JSON array.
    `labels` may be left out of every row when the job is given labels (`--label` / `labels=`);
    a row's own labels take precedence over the job's. Unknown JSONL keys fail that row; unknown
    CSV columns fail the file.

Blank lines are skipped. A malformed row (not JSON, missing text, too few labels, too long...)
becomes an `invalid` item with its error and does not stop the file. A file over the size limit
is rejected before it is read; no row is ever read past the row limit, so a file is never held
in memory whole.

The input text of each item is kept in the job store (`job_items.payload`) until the job is
deleted; the audit log itself keeps only a hash of it.
"""

from __future__ import annotations

import csv
import json
import os
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import numpy as np
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError

from agents import classify as classification
from agents.errors import (CascadeError, InvalidInputError, InvalidOutputError, ModelFileError, StorageError,
                           UnknownTaskError, UserError)

from .config import Settings, load_settings
from .job_models import FINAL_ITEM_STATUSES, JobItemRecord, JobStore

RESULT_FIELDS = ("row", "id", "status", "outcome", "answer", "confidence", "tier", "escalated", "reason", "error",
                 "run_id", "cost", "latency_ms")
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

    @classmethod
    def from_config(cls, config_file: str | Path | None = None, *, cascade: Any = None, **overrides: Any) -> "Jobs":
        return cls(load_settings(config_file, **overrides), cascade=cascade)

    def cascade(self):
        """The Cascade that runs items: built once per process, so each model loads once."""
        if self._cascade is None:
            from .cascade import Cascade

            self._cascade = Cascade(self.settings)
        return self._cascade

    def close(self) -> None:
        if self._cascade is not None and self._owns_cascade:
            self._cascade.close()
        self.store.close()

    def __enter__(self) -> "Jobs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- submitting -------------------------------------------------------------------------------

    def submit(self, path: str | Path, task: str, *, labels: list[str] | None = None,
               max_escalation_share: float | None = None, mode: str | None = None,
               input_format: str | None = None) -> str:
        """Load a JSONL or CSV file as a job (streamed, in chunks) and return its id. The file is
        checked first (task, size, format, header); a malformed row becomes an `invalid` item. The
        job becomes visible to executors only once every row is stored."""
        path = Path(path)
        spec = row_format(task)
        params = spec.job_params(labels)
        mode = mode or self.settings.batch_mode
        if mode not in ("embedded", "distributed"):
            raise InvalidInputError(f"unknown batch mode {mode!r}; use embedded or distributed")
        share = self.settings.batch_max_escalation_share if max_escalation_share is None else max_escalation_share
        if not 0.0 <= share <= 1.0:
            raise InvalidInputError(f"max escalation share must be between 0 and 1; got {share}")
        fmt = check_file(path, int(self.settings.batch_max_file_mb * 2**20), input_format)
        rows = read_rows(path, fmt, task, params, int(self.settings.batch_max_row_kb * 1024))
        job_id = self.store.create_job(task, mode, str(path), params, share)
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
        """The job summary: counts per item status, escalation rate, cost, latency p50/p95."""
        job = self._job(job_id)
        counts = self.store.counts(job_id)
        cost, latencies = self.store.cost_and_latencies(job_id)
        statuses = {s: counts.get(s, 0) for s in ("queued", "pending", "escalating", *FINAL_ITEM_STATUSES)}
        finished = sum(statuses[s] for s in FINAL_ITEM_STATUSES)
        through_tier1 = statuses["done"] + statuses["over_budget"] + statuses["pending"] + statuses["escalating"]
        needed = counts["escalated"] + statuses["over_budget"] + statuses["pending"]
        return {
            "id": job_id, "task": job["task"], "mode": job["mode"], "status": job["status"], "phase": job["phase"],
            "source": job["source"], "total": job["total_items"], "finished": finished, **statuses,
            "escalated": counts["escalated"],
            "escalation_rate": counts["escalated"] / through_tier1 if through_tier1 else 0.0,
            "needed_escalation": needed, "max_escalation_share": job["max_escalation_share"],
            "cost": cost,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
            "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
            "budget": job["note"],
            "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
            "finished_at": _iso(job["finished_at"]),
        }

    def results(self, job_id: str) -> Iterator[dict[str, Any]]:
        """One result per row of the input, in row order (streamed from the store)."""
        self._job(job_id)
        for item in self.store.iter_items(job_id):
            yield {"row": item["seq"], "id": item["external_id"], "status": item["status"],
                   "outcome": item["outcome"], "answer": item["answer"], "confidence": item["confidence"],
                   "tier": item["tier_name"], "escalated": item["escalated"], "reason": item["reason"],
                   "error": item["error"], "run_id": item["run_id"], "cost": item["cost"],
                   "latency_ms": item["latency_ms"]}

    def write_results(self, job_id: str, out: TextIO, fmt: str = "jsonl") -> int:
        if fmt not in ("jsonl", "csv"):
            raise InvalidInputError(f"unknown results format {fmt!r}; use jsonl or csv")
        writer = csv.DictWriter(out, RESULT_FIELDS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        n = 0
        for n, row in enumerate(self.results(job_id), 1):
            if writer:
                writer.writerow(row)
            else:
                out.write(json.dumps(row) + "\n")
        return n

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
        `escalating` one. Returns the item's new status, or "skipped" when it is no longer
        `expected` (a re-delivered message). Errors propagate to `handle_failure`."""
        item = self.store.start_item(item_id, expected)
        if item is None:
            return "skipped"
        phase = 1 if expected == "queued" else 2
        cascade = self.cascade()
        task, payload = item["task"], item["payload"]
        try:
            if phase == 1:
                result = cascade.run(task, stop_after_tier=0, **payload)
            elif item["run_id"] and (cascade.audit.get_run(item["run_id"]) or {}).get("status") == "pending":
                result = cascade.run(task, resume_run_id=item["run_id"], **payload)
            else:  # the paused run ended (its resume failed on a provider error): a fresh run of the ladder
                result = cascade.run(task, **payload)
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
            if job["phase"] == 1:
                self.store.admit(job_id)
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


def failure_kind(exc: BaseException) -> str:
    """How an item's failure is handled: `fatal` fails it at once (bad input or configuration),
    `storage` retries long (the database is down), anything else (provider down, timeout,
    unexpected) retries with backoff up to batch_max_retries."""
    if isinstance(exc, (UserError, ModelFileError, InvalidOutputError)):
        return "fatal"
    if isinstance(exc, (StorageError, SQLAlchemyError)):
        return "storage"
    return "provider"


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# -- input files ----------------------------------------------------------------------------------

_TOO_LONG = "__cascade_row_over_limit__"  # stands in for a CSV line that is not read
_NOT_UTF8 = "__cascade_row_not_utf8__"
RAW_KEEP = 500  # characters of an invalid row kept for its error report


@dataclass
class Row:
    """One data row of the file: its payload, or why it is invalid."""

    seq: int  # data row number, from 1
    line: int  # physical line where the row starts, from 1 (for messages)
    external_id: str | None
    payload: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None


class ClassifyRows:
    task = "classify"
    fields = ("id", "text", "labels")
    example = '{"id": "m1", "text": "Free prize, call now", "labels": ["spam", "ham"]}'

    def job_params(self, labels: list[str] | None) -> dict[str, Any]:
        return {} if not labels else {"labels": classification.validate_labels(list(labels))}

    def payload(self, row: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        text = classification.validate_text(row.get("text"))
        labels = row.get("labels")
        if labels in (None, "", []):
            labels = params.get("labels")
            if labels is None:
                raise InvalidInputError('no labels: give "labels" in the row, or labels for the whole job (--label)')
        return {"text": text, "labels": classification.validate_labels(labels)}

    def csv_cell(self, column: str, value: str) -> Any:
        if column != "labels" or not value.strip():
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"labels cell is not a valid JSON array: {exc.msg}") from None
        return [part.strip() for part in value.split("|")]


ROW_FORMATS: dict[str, ClassifyRows] = {"classify": ClassifyRows()}


def row_format(task: str) -> ClassifyRows:
    if task not in ROW_FORMATS:
        raise UnknownTaskError(f"unknown task {task!r} for a batch; known tasks: {', '.join(ROW_FORMATS)}")
    return ROW_FORMATS[task]


def check_file(path: Path, max_bytes: int, input_format: str | None) -> str:
    """Reject a missing, empty, oversized or unknown-format file before reading it; return its format."""
    if not path.is_file():
        raise InvalidInputError(f"input file {path} does not exist or is not a file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"input file {path} is empty; give one item per row (JSONL or CSV)")
    if size > max_bytes:
        raise InvalidInputError(
            f"input file {path} is {size / 2**20:.1f} MB, over the limit of {max_bytes / 2**20:.1f} MB; split it "
            f"into several jobs or raise CASCADE_BATCH_MAX_FILE_MB")
    fmt = (input_format or path.suffix.lstrip(".")).lower()
    fmt = {"ndjson": "jsonl", "json": "jsonl"}.get(fmt, fmt)
    if fmt not in ("jsonl", "csv"):
        raise InvalidInputError(f"cannot tell the format of {path.name}: name it .jsonl or .csv, or give the format "
                                f"(--format jsonl|csv)")
    return fmt


def read_rows(path: Path, fmt: str, task: str, params: dict[str, Any], max_row_bytes: int) -> Iterator[Row]:
    """The file's rows, one at a time. File-level problems raise InvalidInputError before the first row."""
    spec = row_format(task)
    if fmt == "jsonl":
        return _jsonl_rows(path, spec, params, max_row_bytes)
    return _csv_rows(path, spec, params, max_row_bytes)


def _bounded_lines(binary, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) for every physical line; None for a line over `limit` bytes, which is
    skipped in chunks and never held whole."""
    number = 0
    while True:
        line = binary.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # discard the rest of the over-long line
                rest = binary.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line


def _jsonl_rows(path: Path, spec, params, limit: int) -> Iterator[Row]:
    seq = 0
    with path.open("rb") as binary:
        for number, line in _bounded_lines(binary, limit):
            if line is not None and not line.strip():
                continue
            seq += 1
            where = f"line {number}"
            if line is None:
                yield Row(seq, number, None, None, f"{where}: row longer than {limit // 1024} KB "
                          "(CASCADE_BATCH_MAX_ROW_KB)", raw=None)
                continue
            raw = line.decode("utf-8", errors="replace").strip()
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise InvalidInputError(f"a row must be a JSON object like {spec.example}")
                unknown = sorted(set(data) - set(spec.fields))
                if unknown:
                    raise InvalidInputError(f"unknown key(s) {unknown}; a {spec.task} row has {list(spec.fields)}")
                yield Row(seq, number, _external_id(data.get("id")), spec.payload(data, params))
            except json.JSONDecodeError as exc:
                yield Row(seq, number, None, None, f"{where}: not valid JSON ({exc.msg} at column {exc.colno})",
                          raw=raw[:RAW_KEEP])
            except UnicodeDecodeError:
                yield Row(seq, number, None, None, f"{where}: not UTF-8 text", raw=raw[:RAW_KEEP])
            except InvalidInputError as exc:
                yield Row(seq, number, _safe_id(data), None, f"{where}: {exc.message}", raw=raw[:RAW_KEEP])


def _csv_rows(path: Path, spec, params, limit: int) -> Iterator[Row]:
    binary = path.open("rb")
    lines = _csv_lines(binary, limit)
    try:
        csv.field_size_limit(max(limit, 1024))
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidInputError(f"{path} has no header row; the first row must name the columns, e.g. id,text,labels") from None
        header = [h.strip().lstrip("\ufeff") for h in header]
        unknown = sorted(set(header) - set(spec.fields))
        if "text" not in header or unknown:
            raise InvalidInputError(
                f"{path}: the header row must name a 'text' column and only the columns {list(spec.fields)}; "
                f"got {header}")
    except BaseException:
        binary.close()
        raise
    return _csv_data(binary, reader, header, spec, params, limit)


def _csv_data(binary, reader, header, spec, params, limit: int) -> Iterator[Row]:
    seq = 0
    with binary:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                seq += 1
                yield Row(seq, start, None, None, f"line {start}: malformed CSV ({exc})")
                continue
            if not cells or all(not c.strip() for c in cells):
                continue
            seq += 1
            where = f"line {start}"
            if cells == [_TOO_LONG]:
                yield Row(seq, start, None, None, f"{where}: row longer than {limit // 1024} KB (CASCADE_BATCH_MAX_ROW_KB)")
                continue
            if cells == [_NOT_UTF8]:
                yield Row(seq, start, None, None, f"{where}: not UTF-8 text")
                continue
            raw = ",".join(cells)[:RAW_KEEP]
            if len(cells) != len(header):
                yield Row(seq, start, None, None, f"{where}: {len(cells)} cells for {len(header)} columns", raw=raw)
                continue
            data = dict(zip(header, cells))
            try:
                data = {k: spec.csv_cell(k, v) for k, v in data.items()}
                yield Row(seq, start, _external_id(data.get("id")), spec.payload(data, params))
            except InvalidInputError as exc:
                yield Row(seq, start, _safe_id(data), None, f"{where}: {exc.message}", raw=raw)


def _csv_lines(binary, limit: int) -> Iterator[str]:
    for _, line in _bounded_lines(binary, limit):
        if line is None:
            yield _TOO_LONG + "\n"
            continue
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            yield _NOT_UTF8 + "\n"


def _external_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInputError(f"id must be a string or a number, not {type(value).__name__}")
    text = str(value)
    if len(text) > 256:
        raise InvalidInputError("id is longer than 256 characters")
    return text


def _safe_id(data: Any) -> str | None:
    try:
        return _external_id(data.get("id")) if isinstance(data, dict) else None
    except InvalidInputError:
        return None
