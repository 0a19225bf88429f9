"""The review queue: runs waiting for a person, and a person's answer."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request

from service.deps import ReviewKey, StateDep
from service.idempotent import respond_once
from service.schemas import ReviewResolution

router = APIRouter(prefix="/v1/review", tags=["review"])


@router.get("", response_model=list[dict])
def review_queue(state: StateDep, principal: ReviewKey, task: str | None = None,
                 limit: int = Query(default=100, ge=1, le=1000)):
    """Runs with outcome needs_review and no review yet, oldest first, with their attempts."""
    return state.cascade.review_queue(task=task, limit=limit)


@router.post("/{run_id}", response_model=dict)
def resolve(run_id: str, body: ReviewResolution, request: Request, state: StateDep, principal: ReviewKey):
    """Record a reviewer's answer for a needs_review run (audited)."""
    if state.cascade.audit.get_run(run_id) is None:
        raise HTTPException(404, f"no run {run_id} in the audit store")
    reviewer = body.reviewer or principal.name
    return respond_once(request, state, principal, body, lambda: state.call(
        principal.key_id, lambda c: c.resolve_review(run_id, body.answer, reviewer, body.note, text=body.text)))
