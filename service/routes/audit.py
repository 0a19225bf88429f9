"""The audit log: runs by id with their attempts, recent runs, the ledger check, the export."""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from service.deps import AuditKey, StateDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/runs", response_model=list[dict])
def list_runs(state: StateDep, principal: AuditKey, task: str | None = None, status: str | None = None,
              limit: int = Query(default=20, ge=1, le=1000)):
    """Newest runs first (without attempts)."""
    return state.cascade.audit.list_runs(limit=limit, task=task, status=status)


@router.get("/runs/{run_id}", response_model=dict)
def get_run(run_id: str, state: StateDep, principal: AuditKey):
    """One run with every attempt, its review and the API key id that asked for it."""
    run = state.cascade.audit.get_run(run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id} in the audit store")
    return run


@router.get("/verify", response_model=dict)
def verify(state: StateDep, principal: AuditKey):
    """Check the tamper-evident ledger and every run against it."""
    return state.cascade.audit.verify()


@router.get("/export", response_class=StreamingResponse)
def export(state: StateDep, principal: AuditKey, since: datetime | None = None):
    """Runs started at or after `since`, oldest first, as JSON lines (streamed)."""
    rows = state.cascade.audit.export(since=since)
    return StreamingResponse((json.dumps(r, default=str) + "\n" for r in rows), media_type="application/x-ndjson")
