"""Workflows: list the registered ones, run one on a text, read a run's status, resume it.

A run answers when the workflow completes, pauses on a review or fails (its status says which).
A paused run resumes by itself when its review is resolved (POST /v1/review/{run_id}); resuming
by hand is for a run whose process died or whose failed step may now succeed."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from orchestrator.workflows import WorkflowRun

from service.deps import StateDep, TasksKey
from service.idempotent import respond_once
from service.schemas import WorkflowRequest

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


@router.get("", response_model=list[dict])
def list_workflows(state: StateDep, principal: TasksKey):
    """The registered workflows, their descriptions and options."""
    return state.workflows.list()


@router.post("/{name}/runs", response_model=WorkflowRun)
def run_workflow(name: str, body: WorkflowRequest, request: Request, state: StateDep, principal: TasksKey):
    """Run workflow `name` on a text: each step is a routed cascade run, audited as a child of the
    workflow's run."""
    return respond_once(request, state, principal, body, lambda: state.call(
        principal.key_id, lambda _: state.workflows.run(name, body.text, **body.options)))


@router.get("/runs/{run_id}", response_model=WorkflowRun)
def workflow_status(run_id: str, state: StateDep, principal: TasksKey):
    """A workflow run as the audit log has it: status, output, the reviews it waits on, its events."""
    _exists(state, run_id)
    return state.workflows.status(run_id)


@router.post("/runs/{run_id}/resume", response_model=WorkflowRun)
def resume_workflow(run_id: str, request: Request, state: StateDep, principal: TasksKey):
    """Continue a run from its last checkpoint (a completed run cannot be resumed)."""
    _exists(state, run_id)
    return respond_once(request, state, principal, None, lambda: state.call(
        principal.key_id, lambda _: state.workflows.resume(run_id)))


def _exists(state, run_id: str) -> None:
    run = state.cascade.audit.get_run(run_id)
    if run is None or run["task"] != "workflow":
        raise HTTPException(404, f"no workflow run {run_id} in the audit store")
