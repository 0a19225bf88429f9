"""Workflow steps: routed task calls, plain functions and human steps, as LangGraph nodes.

Every step runs with the workflow's `WorkflowContext` as the graph's runtime context. A task step
is one full cascade run, recorded as a child of the workflow run. Its run id is derived from the
workflow run and the step (and the retry number after a failure), so a step re-executed after a
crash or a resume finds its run in the audit store: a finished one is reused, never run again; one
left `running` by a killed process is restarted under the same id. A step whose run ends
`needs_review` pauses the workflow with `interrupt()`; the run waits in the ordinary review queue,
and resolving it resumes the step with the person's answer.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents.results import Attempt, CascadeResult

from orchestrator.audit.store import child_runs_of
from orchestrator.core.cascade import Cascade

FINISHED = ("accepted", "needs_review")  # a child run in one of these states is reused, not run again
_IDS = uuid.UUID("6f1c2f7e-9a57-4c1e-8f0c-3b1d2a6e5c44")  # namespace of child run ids


@dataclass
class WorkflowContext:
    """What a workflow's nodes get through LangGraph's runtime context."""

    cascade: Cascade
    run_id: str  # the workflow run (also the checkpointer's thread id)
    # One model call at a time: fanned-out branches run on threads, and a llama.cpp model is not reentrant.
    lock: threading.Lock = field(default_factory=threading.Lock)


def child_run_id(workflow_run_id: str, step: str, retry: int = 0) -> str:
    return str(uuid.uuid5(_IDS, f"{workflow_run_id}/{step}/{retry}"))


def result_from_run(run: dict[str, Any]) -> CascadeResult:
    """A finished run as the cascade returned it, rebuilt from its audit record."""
    return CascadeResult(run_id=run["id"], task=run["task"], outcome=run["status"], answer=run["answer"],
                         confidence=run["confidence"], tier_name=run["final_tier"], reason=run["reason"],
                         attempts=[Attempt.model_validate(a) for a in run["attempts"]],
                         latency_ms=run["latency_ms"] or 0.0, cost=run["cost"])


def result_output(result: CascadeResult, **extra: Any) -> dict[str, Any]:
    """What a task step puts in the workflow state: plain values, so any checkpointer can store them."""
    return {"run_id": result.run_id, "task": result.task, "outcome": result.outcome, "answer": result.answer,
            "confidence": result.confidence, "tier": result.tier_name, "reason": result.reason,
            "tiers_tried": [a.tier_name for a in result.attempts], "latency_ms": result.latency_ms,
            "decided_by": "model" if result.outcome == "accepted" else None, **extra}


def run_task_step(runtime: Runtime[WorkflowContext], step: str, call: Callable[[str], dict[str, Any]],
                  rebuild: Callable[[CascadeResult], dict[str, Any]]) -> dict[str, Any]:
    """Run one task step: `call(run_id)` makes the cascade run under that id and returns the
    step's output; `rebuild(result)` makes the same output from a run that already finished.
    An output with outcome needs_review pauses the workflow until a person answers; the output
    then carries the answer, with decided_by "person" and the reviewer."""
    ctx = runtime.context
    store = ctx.cascade.audit
    retry = sum(1 for e in store.workflow_events(ctx.run_id) if e["step"] == step and e["kind"] == "fail")
    run_id = child_run_id(ctx.run_id, step, retry)
    with ctx.lock:
        existing = store.get_run(run_id)
        try:
            output = (rebuild(result_from_run(existing)) if existing and existing["status"] in FINISHED
                      else contextvars.Context().run(_as_child, ctx.run_id, call, run_id))
        # recorded, then the runner stops the workflow cleanly. An interrupt (Ctrl-C, SystemExit) is
        # recorded too: the cascade closed the step's run as failed, so a resume must retry the step
        # under the next retry's id, not restart that run.
        except BaseException as exc:
            record_failure(ctx, step, exc, run_id if store.get_run(run_id) else None)
            raise
    store.record_event(ctx.run_id, step, "step", child_run_id=output.get("run_id"), detail=_summary(output), once=True)
    if output.get("outcome") == "needs_review" and output.get("run_id"):
        decision = wait_for_person(ctx, step, output["run_id"], output.get("reason", ""))
        output = {**output, "answer": decision["answer"], "decided_by": "person", "reviewer": decision["reviewer"]}
    return output


def _as_child(workflow_run_id: str, call: Callable[[str], dict[str, Any]], run_id: str) -> dict[str, Any]:
    """Run `call` as a child run of the workflow. Called in a fresh context: the cascade's own
    LangGraph graph must not see the workflow's run config, or it would run as a checkpointed
    subgraph of the step (and a failed run would resume from its stored error on a retry)."""
    with child_runs_of(workflow_run_id):
        return call(run_id)


def routed_task(task: str, payload: Callable[[dict], dict[str, Any]], output_key: str,
                step: str | None = None) -> Callable[[dict, Runtime[WorkflowContext]], dict[str, Any]]:
    """A node for any LangGraph graph that makes one routed task call: `payload(state)` gives
    Cascade.run's keywords (text=, labels=...); the step's output lands in `state[output_key]`.
    The graph runs as a workflow (see registry.register_graph) with its pauses and audit."""
    def node(state: dict, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
        name = step or output_key
        output = run_task_step(runtime, name, lambda run_id: result_output(
            runtime.context.cascade.run(task, run_id=run_id, **payload(state))), result_output)
        return {output_key: output}

    return node


def function_step(step: str, fn: Callable[[dict, WorkflowContext], dict[str, Any]]
                  ) -> Callable[[dict, Runtime[WorkflowContext]], dict]:
    """A plain-function node: `fn(state, context)` returns a partial state; recorded as a step (or
    a failure). A function step is re-run after a crash that came before its checkpoint: keep it
    free of side effects other than audit notes."""
    def node(state: dict, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
        try:
            update = fn(state, runtime.context)
        except Exception as exc:
            record_failure(runtime.context, step, exc, None)
            raise
        runtime.context.cascade.audit.record_event(runtime.context.run_id, step, "step", once=True)
        return update

    return node


def human_step(runtime: Runtime[WorkflowContext], step: str, question: str,
               options: list[str] | None = None) -> dict[str, Any]:
    """Hand the case to a person: a `handoff` run waits in the review queue (its text: `question`;
    its labels: `options`, if any), and the workflow pauses until it is resolved."""
    ctx = runtime.context
    store = ctx.cascade.audit
    run_id = child_run_id(ctx.run_id, step)
    if store.get_run(run_id) is None:
        with child_runs_of(ctx.run_id):
            # a person's reply to a case is not a labelled example of any task: never stored as one
            policy = {"source": "workflow handoff", "external": "forbid", "keep_examples": False}
            store.start_run("handoff", question, {"labels": options or [], "workflow_step": step, "data_policy": policy},
                            "-", run_id=run_id)
            store.finish_run(CascadeResult(run_id=run_id, task="handoff", outcome="needs_review", answer=None,
                                           confidence=None, tier_name=None, attempts=[], latency_ms=0.0, cost=0.0,
                                           reason=f"needs review: handed to a person by workflow step {step}"))
        store.record_event(ctx.run_id, step, "step", child_run_id=run_id, detail={"outcome": "needs_review"}, once=True)
    return {"run_id": run_id, "outcome": "resolved", "decided_by": "person",
            **wait_for_person(ctx, step, run_id, "handed to a person")}


def wait_for_person(ctx: WorkflowContext, step: str, review_run_id: str, reason: str) -> dict[str, Any]:
    """Pause on `review_run_id` (a needs_review run in the queue); returns the resolution
    {answer, reviewer, note} once the runner resumes the workflow with it."""
    store = ctx.cascade.audit
    store.record_event(ctx.run_id, step, "pause", child_run_id=review_run_id, detail={"reason": reason}, once=True)
    decision = interrupt({"step": step, "review_run_id": review_run_id, "reason": reason})
    store.record_event(ctx.run_id, step, "resume", child_run_id=review_run_id, reviewer=decision["reviewer"],
                       detail={"answer": decision["answer"], "note": decision.get("note", "")}, once=True)
    return decision


def record_failure(ctx: WorkflowContext, step: str, exc: BaseException, run_id: str | None) -> None:
    ctx.cascade.audit.record_event(ctx.run_id, step, "fail", child_run_id=run_id, detail={
        "error_type": type(exc).__name__, "error": getattr(exc, "message", None) or str(exc)})


def _summary(output: dict[str, Any]) -> dict[str, Any]:
    """The step's decision for its audit event (the answer cut short: the child run has it whole)."""
    answer = output.get("answer")
    return {"outcome": output.get("outcome"), "tier": output.get("tier"), "confidence": output.get("confidence"),
            "answer": answer[:200] if isinstance(answer, str) else answer}
