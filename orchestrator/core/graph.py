"""The cascade as a LangGraph StateGraph: attempt on a tier -> assess -> escalate to the next tier, or finalize.

Nodes are plain functions `state -> partial state`. Model backends, the task runner and the
threshold reach them through the graph's runtime context, never module globals.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents.classify import blend_vote
from agents.errors import InvalidOutputError, ModelError
from agents.redaction import Redactor
from agents.results import Attempt, TierOutput
from routers import ClassThresholds, decide

from orchestrator.calibration.fitting import CalibrationArtifact, apply_artifact, threshold_for


@dataclass(frozen=True)
class TierHandle:
    """A configured tier as the graph sees it: a name, identity for the audit, and how to call it."""

    name: str
    model_id: str
    model_file_hash: Callable[[], str | None]
    backend: Callable[[], Any]  # loads lazily: a tier that is never reached is never loaded
    price_per_1k: tuple[float, float] = (0.0, 0.0)  # (input, output): a notional price for local tiers
    external: bool = False  # data sent to it leaves the machine: the item's privacy policy applies

    def token_cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price_per_1k[0] + tokens_out * self.price_per_1k[1]) / 1000


@dataclass(frozen=True)
class ItemPrivacy:
    """What this item may do outside the machine (the task's policy, or confidential for the call)."""

    external: str = "allow"  # redact | forbid | allow
    redact: Callable[[list[str]], Any] | None = None  # texts -> agents.redaction.Redacted

    def allows(self, tier: TierHandle) -> bool:
        return not (tier.external and self.external == "forbid")


@dataclass(frozen=True)
class CascadeContext:
    tiers: list[TierHandle]
    run_task: Callable[[Any, dict[str, Any]], TierOutput]  # (backend, payload) -> TierOutput
    prompt_version: str
    threshold: float  # the configured default, when no calibration artifact applies
    # (tier, labels) -> (artifact or None, why none): the calibration that turns this tier's label
    # probabilities into a calibrated confidence and a fitted threshold
    calibration: Callable[[TierHandle, list[str]], tuple[CalibrationArtifact | None, str]]
    privacy: ItemPrivacy = ItemPrivacy()
    vote_weight: float = 0.0  # share of the shown examples' vote (payload["neighbour_vote"]) in label probabilities
    class_thresholds: Mapping[str, float] = field(default_factory=dict)  # configured per-label thresholds
    review_below_threshold: frozenset[str] = frozenset()  # labels the last tier may not keep unsure

    def next_allowed(self, after: int) -> int | None:
        """The first tier after `after` this item may be sent to."""
        return next((i for i in range(after + 1, len(self.tiers)) if self.privacy.allows(self.tiers[i])), None)


class CascadeState(TypedDict, total=False):
    payload: dict[str, Any]
    tier_index: int
    attempts: list[Attempt]
    route: str  # accept | escalate | error | review | pause | blocked (only tiers the data policy forbids are left)
    stop_after_tier: int | None  # pause instead of escalating past this tier (two-phase batches)
    error: ModelError | None  # a tier failed outright (unreachable, timeout...): the run fails
    threshold_basis: str  # which threshold the latest attempt was held to, when not the task's single one
    final: dict[str, Any]


def attempt(state: CascadeState, runtime: Runtime[CascadeContext]) -> CascadeState:
    ctx = runtime.context
    index = state.get("tier_index", 0)
    tier = ctx.tiers[index]
    started = time.perf_counter()
    record = Attempt(tier_index=index, tier_name=tier.name, model_id=tier.model_id, model_file_hash=None,
                     prompt_version=ctx.prompt_version, threshold=ctx.threshold)
    try:
        record.model_file_hash = tier.model_file_hash()
        if tier.external and ctx.privacy.external == "redact":
            output, record.redactions = _run_redacted(ctx, tier, state["payload"])
        else:
            output = ctx.run_task(tier.backend(), state["payload"])
    except InvalidOutputError as exc:
        output = TierOutput(answer=None, invalid_reason=exc.message)
    except ModelError as exc:
        record.latency_ms = ms_since(started)
        record.error = exc.message
        record.reason = f"tier failed: {exc.message}"
        return {"attempts": [*state.get("attempts", []), record], "error": exc}
    record.latency_ms = ms_since(started)
    record.model_id = output.model_id or record.model_id
    record.model_file_hash = output.model_file_hash or record.model_file_hash
    record.answer = output.answer
    record.label_probs = output.label_probs
    record.confidence = record.raw_confidence = output.confidence
    vote = state["payload"].get("neighbour_vote")
    if ctx.vote_weight and vote and output.label_probs:
        # The model's own top probability stays in raw_confidence; answer and confidence are the blend's.
        record.label_probs = blend_vote(output.label_probs, vote, ctx.vote_weight)
        record.answer = max(record.label_probs, key=record.label_probs.get)
        record.confidence = record.label_probs[record.answer]
    record.checks = list(output.checks)
    artifact = None
    if output.label_probs:
        artifact, why_none = ctx.calibration(tier, state["payload"]["labels"])
        _calibrate(record, artifact, why_none)
    basis = _choose_threshold(ctx, record, artifact)
    record.tokens_in, record.tokens_out = output.tokens_in, output.tokens_out
    # Remote backends price their own calls; local tiers cost what their configured prices say.
    record.cost = output.cost or tier.token_cost(output.tokens_in, output.tokens_out)
    if output.invalid_reason:
        record.error = f"invalid output: {output.invalid_reason}"
    return {"attempts": [*state.get("attempts", []), record], "threshold_basis": basis}


def _run_redacted(ctx: CascadeContext, tier: TierHandle, payload: dict[str, Any]) -> tuple[TierOutput, dict[str, int]]:
    """Send the tier placeholders instead of personal data (in the text, the demonstrations and the
    labels, which can name people too); put the originals back in what it answers."""
    demos, labels = payload.get("demonstrations") or [], payload["labels"]
    redacted = ctx.privacy.redact([payload["text"], *(text for text, _ in demos), *labels])
    text, *rest = redacted.texts
    demo_texts, sent_labels = rest[:len(demos)], rest[len(demos):]
    as_sent = dict(zip(labels, sent_labels))
    sent = {**payload, "text": text, "labels": sent_labels,
            "demonstrations": [(t, as_sent.get(label, label)) for t, (_, label) in zip(demo_texts, demos)]}
    output = ctx.run_task(tier.backend(), sent)
    restore = partial(Redactor.restore, mapping=redacted.mapping)
    restored = output.model_copy(update={
        "answer": output.answer and restore(output.answer), "raw_output": restore(output.raw_output),
        "label_probs": {restore(label): p for label, p in output.label_probs.items()}})
    return restored, dict(redacted.counts)


def _calibrate(record: Attempt, artifact: CalibrationArtifact | None, why_none: str) -> None:
    """Replace the raw answer and confidence with the artifact's calibrated ones, and name it."""
    if artifact is None:
        record.calibration = why_none
        return
    record.answer, record.confidence = apply_artifact(artifact, record.label_probs)
    record.calibration = f"{artifact.id} ({artifact.method}, {artifact.policy})"


def _choose_threshold(ctx: CascadeContext, record: Attempt, artifact: CalibrationArtifact | None) -> str:
    """Set the threshold the attempt's answer must reach; return which one it is ("" for the
    task's single threshold). An artifact's per-class threshold fitted for the answer's label
    wins; otherwise a configured per-label threshold applies, and a fitted single threshold
    never lowers it (the asymmetry of a task like fraud flagging is never lost)."""
    label = record.answer
    configured = ctx.class_thresholds.get(label) if label is not None else None
    if artifact is None:
        record.threshold = ctx.threshold if configured is None else configured
        return "" if configured is None else f"configured for {label!r}"
    fitted = artifact.thresholds()
    record.threshold = threshold_for(artifact, label).value
    if isinstance(fitted, ClassThresholds) and label in fitted.per_label and not fitted.per_label[label].fallback:
        return f"fitted for {label!r}"
    if configured is not None and configured > record.threshold:
        basis = f"configured for {label!r}, stricter than the fitted {record.threshold:.3f}"
        record.threshold = configured
        return basis
    return ""


def assess(state: CascadeState, runtime: Runtime[CascadeContext]) -> CascadeState:
    """Accept the latest attempt, or escalate it to the next tier; the router says why."""
    ctx = runtime.context
    attempts = list(state["attempts"])
    index = state.get("tier_index", 0)
    last = attempts[-1]
    decision, reason = decide(last, last.threshold, is_last_tier=index == len(ctx.tiers) - 1,
                              basis=state.get("threshold_basis", ""),
                              keep_on_last_tier=last.answer not in ctx.review_below_threshold)
    following = ctx.next_allowed(index)
    if decision == "escalate" and following is None:
        blocked = [t.name for t in ctx.tiers[index + 1:]]
        reason = f"{reason}; the data policy ({ctx.privacy.external}) keeps this item from external tier(s) {blocked}"
    attempts[-1] = attempts[-1].model_copy(update={"decision": decision, "reason": reason})
    update: CascadeState = {"attempts": attempts, "route": decision}
    if decision == "escalate":
        stop = state.get("stop_after_tier")
        if following is None:
            update["route"] = "blocked"
        elif stop is not None and index >= stop:
            update["route"] = "pause"
        else:
            update["tier_index"] = following
    return update


def finalize(state: CascadeState) -> CascadeState:
    """The run's outcome: the accepted attempt's answer, or why there is none."""
    attempts = state["attempts"]
    final = attempts[-1]
    cost = sum(a.cost for a in attempts)
    if state.get("route") == "pause":
        outcome = {"outcome": "pending", "answer": None, "confidence": None, "tier_name": None,
                   "reason": f"escalation pending: {final.reason}"}
    elif state.get("error") is not None:
        outcome = {"outcome": "failed", "answer": None, "confidence": None, "tier_name": None, "reason": final.reason}
    elif state.get("route") == "blocked":
        outcome = {"outcome": "needs_review", "answer": None, "confidence": None, "tier_name": None,
                   "reason": f"needs review: {final.reason}"}
    elif final.decision == "accept":
        outcome = {"outcome": "accepted", "answer": final.answer, "confidence": final.confidence,
                   "tier_name": final.tier_name, "reason": final.reason}
    else:
        outcome = {"outcome": "needs_review", "answer": None, "confidence": None, "tier_name": None,
                   "reason": f"no tier gave an acceptable answer: {final.reason}"}
    return {"final": {**outcome, "cost": cost}}


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def build_graph():
    graph = StateGraph(CascadeState, context_schema=CascadeContext)
    graph.add_node("attempt", attempt)
    graph.add_node("assess", assess)
    graph.add_node("finalize", finalize)
    graph.add_edge(START, "attempt")
    graph.add_conditional_edges("attempt", lambda s: "finalize" if s.get("error") else "assess",
                                ["assess", "finalize"])
    graph.add_conditional_edges("assess", lambda s: "attempt" if s["route"] == "escalate" else "finalize",
                                ["attempt", "finalize"])
    graph.add_edge("finalize", END)
    return graph.compile()
