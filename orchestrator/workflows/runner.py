"""`Workflows`: run, inspect and resume workflows by name, with their checkpoints and audit case.

A workflow run is one audit run (task "workflow", status running | paused | completed | failed);
its steps' cascade runs are its children, and its events (steps, failures, pauses, resumes with
who resolved them, the finish with the output) are in the ledger with it. The checkpointer's
thread id is the workflow run's id.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from pydantic import BaseModel, Field

from agents.errors import InvalidInputError

from orchestrator.core.cascade import Cascade
from orchestrator.workflows import registry
from orchestrator.workflows.checkpoints import Checkpointer, open_checkpointer
from orchestrator.workflows.steps import WorkflowContext

TASK = "workflow"  # the audit task of a workflow run


class WorkflowRun(BaseModel):
    """A workflow run as the audit log has it. `waiting` lists the review-queue runs it is paused
    on ({step, review_run_id, reason}); `output` is the final output once completed."""

    run_id: str
    workflow: str
    status: str
    output: dict[str, Any] | None = None
    waiting: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    latency_ms: float | None = None


class Workflows:
    """The SDK for workflows on one Cascade: `list()`, `run(name, text, **options)`,
    `status(run_id)`, `resume(run_id)`. Resolving a review a workflow waits on
    (`Cascade.resolve_review`, `cascade review resolve`) resumes it as well."""

    def __init__(self, cascade: Cascade) -> None:
        self.cascade = cascade
        self._checkpoints: Checkpointer | None = None
        self._graphs: dict[str, CompiledStateGraph] = {}

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None

    def __enter__(self) -> "Workflows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def list(self) -> list[dict[str, str]]:
        return [{"name": s.name, "description": s.description, "options": s.options}
                for s in map(registry.get, registry.names())]

    def run(self, name: str, text: str, *, run_id: str | None = None, **options: Any) -> WorkflowRun:
        """Start workflow `name` on `text` and drive it until it completes, pauses or fails.
        `run_id=` chooses the workflow run's id (a batch job fixes it per item); a run of that id
        left `running` before its first checkpoint is restarted (`AuditStore.start_run`)."""
        spec = registry.get(name)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"workflow {name!r} needs a non-empty input text")
        state = spec.make_input(text, options)  # bad input is refused before the run is recorded
        options_hash = hashlib.sha256(json.dumps([name, options], sort_keys=True, default=str).encode()).hexdigest()
        run_id = self.cascade.audit.start_run(TASK, text, {"workflow": name, "options": options}, options_hash,
                                              run_id=run_id)
        return self._drive(spec, run_id, state)

    def status(self, run_id: str) -> WorkflowRun:
        run = self._workflow_run(run_id)
        events = self.cascade.audit.workflow_events(run_id)
        resumed = {e["step"] for e in events if e["kind"] == "resume"}
        waiting = [{"step": e["step"], "review_run_id": e["child_run_id"], "reason": e["detail"].get("reason", "")}
                   for e in events if e["kind"] == "pause" and e["step"] not in resumed]
        finish = next((e for e in reversed(events) if e["kind"] == "finish"), None)
        failure = next((e for e in reversed(events) if e["kind"] == "fail"), None)
        return WorkflowRun(run_id=run_id, workflow=run["params"]["workflow"], status=run["status"],
                           output=finish["detail"] if finish else None,
                           waiting=waiting if run["status"] == "paused" else [],
                           error=f"{failure['step']}: {failure['detail'].get('error')}"
                           if failure and run["status"] == "failed" else None,
                           events=events, latency_ms=run["latency_ms"])

    def resume(self, run_id: str) -> WorkflowRun:
        """Continue a workflow from its last checkpoint: one whose process died, one that failed
        (its failed step is tried again), or one paused on reviews (with the answers resolved so
        far; with none resolved it stays paused). A completed workflow cannot be resumed."""
        run = self._workflow_run(run_id)
        if run["status"] == "completed":
            raise InvalidInputError(f"workflow run {run_id} is already completed")
        spec = registry.get(run["params"]["workflow"])
        config = {"configurable": {"thread_id": run_id}}
        snapshot = self._graph(spec).get_state(config)
        if not snapshot.values and not snapshot.next:
            raise InvalidInputError(f"workflow run {run_id} has no checkpoint in {self._checkpointer().where}; "
                                    "it cannot be resumed (was it run against another data dir or database?)")
        if snapshot.interrupts:
            answers = {}
            for pending in snapshot.interrupts:
                review = (self.cascade.audit.get_run(pending.value["review_run_id"]) or {}).get("review")
                if review:
                    answers[pending.id] = {k: review[k] for k in ("answer", "reviewer", "note")}
            if not answers:  # a process that died while pausing never recorded the pause: record it now
                return self._pause(run_id, snapshot, run["latency_ms"] or 0.0)
            return self._drive(spec, run_id, Command(resume=answers))
        return self._drive(spec, run_id, None)

    def has_checkpoint(self, run_id: str) -> bool:
        """Whether the workflow run has a checkpoint to resume from (none before its first step
        started, and none once it completed)."""
        return self._checkpointer().saver.get_tuple({"configurable": {"thread_id": run_id}}) is not None

    def _drive(self, spec: registry.WorkflowSpec, run_id: str, graph_input: Any) -> WorkflowRun:
        audit = self.cascade.audit
        graph, config = self._graph(spec), {"configurable": {"thread_id": run_id}}
        before = (audit.get_run(run_id) or {}).get("latency_ms") or 0.0
        audit.set_workflow_status(run_id, "running", reason="running", latency_ms=before)
        started = time.perf_counter()
        spent = lambda: before + (time.perf_counter() - started) * 1000  # noqa: E731  # active time, pauses excluded
        try:
            graph.invoke(graph_input, config, context=WorkflowContext(self.cascade, run_id), durability="sync")
        except Exception as exc:  # the step recorded its failure; the checkpoint keeps the steps before it
            audit.set_workflow_status(run_id, "failed", reason=f"failed: {getattr(exc, 'message', None) or exc}",
                                      latency_ms=spent())
            return self.status(run_id)
        snapshot = graph.get_state(config)
        if snapshot.interrupts:
            return self._pause(run_id, snapshot, spent())
        values = snapshot.values
        output = values.get(spec.output_key) if spec.output_key else values
        output = json.loads(json.dumps(output, default=str))  # plain JSON for the audit event
        audit.record_event(run_id, "finish", "finish", detail=output, once=True)
        answer, reason = spec.summarize(output)
        audit.set_workflow_status(run_id, "completed", answer=answer, reason=reason, latency_ms=spent())
        self._checkpointer().saver.delete_thread(run_id)  # the checkpoint holds the input text
        return self.status(run_id)

    def _pause(self, run_id: str, snapshot: Any, latency_ms: float) -> WorkflowRun:
        steps = ", ".join(f"{i.value['step']} (review run {i.value['review_run_id']})" for i in snapshot.interrupts)
        self.cascade.audit.set_workflow_status(run_id, "paused", reason=f"waiting for review: {steps}",
                                               latency_ms=latency_ms)
        return self.status(run_id)

    def _workflow_run(self, run_id: str) -> dict[str, Any]:
        run = self.cascade.audit.get_run(run_id)
        if run is None or run["task"] != TASK:
            raise InvalidInputError(f"no workflow run {run_id}; list them with `cascade audit list --task workflow`")
        return run

    def _checkpointer(self) -> Checkpointer:
        if self._checkpoints is not None and self._checkpoints.broken:
            # a long-lived owner (a batch worker) reconnects after a database restart, not fail every workflow
            self.close()
            self._graphs.clear()
        if self._checkpoints is None:
            self._checkpoints = open_checkpointer(self.cascade.settings.audit_url, self.cascade.settings.data_dir)
        return self._checkpoints

    def _graph(self, spec: registry.WorkflowSpec) -> CompiledStateGraph:
        if spec.name not in self._graphs:
            self._graphs[spec.name] = spec.build().compile(checkpointer=self._checkpointer().saver, name=spec.name)
        return self._graphs[spec.name]


def resume_after_review(cascade: Cascade, run: dict[str, Any], review: dict[str, Any]) -> dict[str, Any] | None:
    """The review queue's listener: a workflow paused on the resolved run resumes with the answer."""
    parent = run.get("parent_run_id")
    workflow_run = cascade.audit.get_run(parent) if parent else None
    if workflow_run is None or workflow_run["task"] != TASK or workflow_run["status"] != "paused":
        return None
    with Workflows(cascade) as workflows:
        return {"workflow": workflows.resume(parent).model_dump(mode="json", exclude={"events"})}
