"""Workflow jobs: each row's text runs the job's registered workflow once, whole, in phase 1.

A workflow's steps each escalate inside their own cascade run, so a workflow job has no
escalation phase: its budget (`max_escalation_share`, `max_spend`) does not apply, and every
item ends in phase 1. The item's audit run is the workflow run (its steps are child runs), under
the id `JobStore.start_item` fixed, so `cascade audit show` on a result's run_id shows the tree.

The item's result, from the workflow run:
    completed  done, outcome accepted, answer = the workflow's summary answer
    paused     done, outcome needs_review, reason naming the steps waiting for review; resolving
               them in the review queue resumes the workflow (the job item keeps its result)
    failed     failed, with the workflow's error; `retry-failed` resumes the run at its failed step
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.errors import RunConflictError

from orchestrator.audit.caller import acting_as, current_caller

from orchestrator.jobs.store import JobStore

if TYPE_CHECKING:  # loading LangGraph waits until a workflow job runs
    from orchestrator.workflows import WorkflowRun, Workflows

TASK = "workflow"


def process_workflow_item(store: JobStore, workflows: Workflows, item_id: int, expected: str,
                          item: dict[str, Any]) -> str:
    """`Jobs.process_item` for a workflow job's item (`item` as `JobStore.start_item` returned it)."""
    try:
        with acting_as(item["api_key_id"] or current_caller()):  # the key that submitted the job
            run = drive(workflows, item["params"], item["payload"]["text"], item["run_id"], item["run_status"])
    except RunConflictError:
        return "skipped"  # another execution of this item took the same run meanwhile
    values = item_values(run, workflows.cascade.audit.get_run(run.run_id))
    store.link_run(item_id, run.run_id, 1, values["outcome"])
    return values["status"] if store.finish_item(item_id, expected, values) else "skipped"


def drive(workflows: Workflows, params: dict[str, Any], text: str, run_id: str,
          run_status: str | None) -> WorkflowRun:
    """The item's workflow run `run_id`, run or continued as far as it goes now:
    none yet: run under that id; paused or completed: as recorded (no step runs again); left
    running by an execution that died: resumed from its checkpoint (or restarted, if it died before
    the first one); failed (retry-failed, or the execution died before writing the item): resumed,
    which retries only the failed step."""
    if run_status in ("paused", "completed"):
        return workflows.status(run_id)
    if run_status == "failed" or (run_status == "running" and workflows.has_checkpoint(run_id)):
        return workflows.resume(run_id)
    return workflows.run(params["workflow"], text, run_id=run_id, **params["options"])


def item_values(run: WorkflowRun, record: dict[str, Any]) -> dict[str, Any]:
    """The job item's result columns from its workflow run (`record`: the run's audit row)."""
    common = {"run_id": run.run_id, "confidence": None, "tier_name": None, "cost": record["cost"] or 0.0,
              "latency_ms": run.latency_ms}
    if run.status == "failed":
        error = run.error or record["reason"].removeprefix("failed: ")  # no step failed: the runner's reason
        return {**common, "status": "failed", "outcome": "failed", "answer": None, "error": error,
                "reason": f"failed: workflow {run.workflow} at {error}"}
    if run.status == "paused":  # the run's reason names the steps waiting and their review runs
        return {**common, "status": "done", "outcome": "needs_review", "answer": None, "error": None,
                "reason": record["reason"]}
    return {**common, "status": "done", "outcome": "accepted", "answer": record["answer"], "error": None,
            "reason": record["reason"]}
