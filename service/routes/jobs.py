"""Batch jobs over HTTP: submit JSON items or a file, status (with webhook deliveries), results
streamed as JSON lines or CSV, cancel, retry-failed. Embedded jobs run in a thread of the server
process; distributed ones on the Celery workers (`cascade worker`)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Iterator, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from orchestrator.access import Principal
from orchestrator.jobs.results import RESULT_FIELDS

from service.deps import JobsKey, StateDep
from service.idempotent import respond_once
from service.schemas import JobAccepted, JobRequest
from service.state import ServiceState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _job_or_404(state: ServiceState, job_id: str) -> dict:
    job = state.jobs.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no batch job with id {job_id}")
    return job


def _submit(state: ServiceState, principal: Principal, path: Path, task: str, labels, share, spend,
            callback_url: str | None, workflow: str | None = None, options: dict | None = None) -> JobAccepted:
    job_id = state.jobs.submit(path, task, labels=labels, max_escalation_share=share, max_spend=spend,
                               api_key_id=principal.key_id, workflow=workflow, options=options)
    if callback_url:
        state.webhooks.add(job_id, principal.key_id, callback_url)
    job = state.jobs.store.get_job(job_id)
    if job["mode"] == "embedded":
        state.run_embedded_job(job_id)
    return JobAccepted(job_id=job_id, status=job["status"], mode=job["mode"])


def _json_object(field: str, text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPException(422, f"{field}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise HTTPException(422, f"{field}: must be a JSON object of option names to values")
    return value


def _upload_path(state: ServiceState, suffix: str) -> Path:
    folder = state.settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}{suffix}"


@router.post("", response_model=JobAccepted, status_code=202)
def submit_items(body: JobRequest, request: Request, state: StateDep, principal: JobsKey):
    """Submit items as JSON (one object per item, as a JSONL row of a batch file)."""
    def work() -> JobAccepted:
        path = _upload_path(state, ".jsonl")
        path.write_text("".join(json.dumps(item) + "\n" for item in body.items), encoding="utf-8")
        return _submit(state, principal, path, body.task, body.labels, body.max_escalation_share, body.max_spend,
                       body.callback_url, body.workflow, body.options)

    return respond_once(request, state, principal, body, work, status_code=202)


@router.post("/upload", response_model=JobAccepted, status_code=202)
def submit_file(request: Request, state: StateDep, principal: JobsKey, file: UploadFile = File(...),
                task: Literal["classify", "fraud", "workflow"] = Form(...), labels: list[str] | None = Form(None),
                workflow: str | None = Form(None, description="for task workflow: the workflow each row runs"),
                options: str | None = Form(None, description="for task workflow: its options as a JSON object"),
                max_escalation_share: float | None = Form(None, ge=0.0, le=1.0),
                max_spend: float | None = Form(None, ge=0.0),
                callback_url: str | None = Form(None, pattern=r"^https?://", max_length=2000)):
    """Submit a JSONL or CSV batch file (multipart form field `file`)."""
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise HTTPException(422, "file: the batch file's name must end in .jsonl or .csv")
    workflow_options = _json_object("options", options)
    form = {"task": task, "labels": labels, "workflow": workflow, "options": workflow_options, "file": file.filename, "max_escalation_share": max_escalation_share,
            "max_spend": max_spend, "callback_url": callback_url, "size": file.size}

    def work() -> JobAccepted:
        path = _upload_path(state, suffix)
        with path.open("wb") as out:
            while chunk := file.file.read(1 << 20):
                out.write(chunk)
        return _submit(state, principal, path, task, labels, max_escalation_share, max_spend, callback_url, workflow,
                       workflow_options)

    return respond_once(request, state, principal, form, work, status_code=202)


@router.get("/{job_id}", response_model=dict)
def status(job_id: str, state: StateDep, principal: JobsKey):
    """Counts, escalation rate, cost, latency, budget decision, and the webhook's deliveries."""
    _job_or_404(state, job_id)
    return {**state.jobs.status(job_id), "webhook": state.webhooks.get(job_id)}


def _rows(state: ServiceState, job_id: str, fmt: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RESULT_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for row in state.jobs.results(job_id):
        if writer:
            writer.writerow(row)
        else:
            buffer.write(json.dumps(row) + "\n")
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


@router.get("/{job_id}/results", response_class=StreamingResponse)
def results(job_id: str, state: StateDep, principal: JobsKey, format: Literal["jsonl", "csv"] = Query("jsonl")):
    """One result per input row, in row order, streamed."""
    _job_or_404(state, job_id)
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(_rows(state, job_id, format), media_type=media)


@router.post("/{job_id}/cancel", response_model=dict)
def cancel(job_id: str, state: StateDep, principal: JobsKey):
    """Cancel the job's unfinished items."""
    _job_or_404(state, job_id)
    return {"job_id": job_id, "cancelled": state.jobs.cancel(job_id)}


@router.post("/{job_id}/retry-failed", response_model=dict)
def retry_failed(job_id: str, state: StateDep, principal: JobsKey):
    """Requeue a finished job's failed items (an embedded job runs again in this process)."""
    job = _job_or_404(state, job_id)
    requeued = state.jobs.retry_failed(job_id)
    if requeued and job["mode"] == "embedded":
        state.run_embedded_job(job_id)
    return {"job_id": job_id, "requeued": requeued}
