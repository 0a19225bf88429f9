"""`support-triage`: classify a customer message's intent, screen it for fraud (a fraud verdict
stops the flow and flags the case), answer it from the ingested documents with citations or hand
it to a person, and end with a disposition recording the whole path.

    intent (classify) -> fraud-screen (fraud) -> fraud?  -> disposition
                                                 legit   -> answer (ask) -> answered? -> disposition
                                                                            else      -> handoff (person) -> disposition

Any step ending needs_review pauses the workflow until a person resolves its run in the review queue.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents import qa
from agents.errors import InvalidInputError
from agents.fraud import find_indicators

from orchestrator.workflows.registry import WorkflowSpec, check_options, register, text_list
from orchestrator.workflows.steps import (
    WorkflowContext, function_step, human_step, result_output, routed_task, run_task_step,
)

NAME = "support-triage"
# Banking support intents by default (banking77's, grouped): a caller passes its own with labels=[...].
DEFAULT_INTENTS = ["card lost or stolen", "card payment or transfer problem", "fees and charges",
                   "account access or security", "general question"]


class TriageState(TypedDict, total=False):
    message: str
    labels: list[str]
    k: int
    intent: dict
    screen: dict
    reply: dict
    handoff: dict
    disposition: dict


def _options(options: dict[str, Any]) -> dict[str, Any]:
    check_options(NAME, options, {"labels": "the intents", "k": "passages shown to the reader"})
    k = options.get("k", 4)
    if not isinstance(k, int) or isinstance(k, bool):
        raise InvalidInputError(f"k must be an integer (passages shown to the reader); got {k!r}")
    return {"labels": text_list(options.get("labels", DEFAULT_INTENTS)), "k": k}


def make_input(text: str, options: dict[str, Any]) -> TriageState:
    return {"message": text, **_options(options)}


def screen(state: TriageState, runtime: Runtime[WorkflowContext]) -> dict:
    message = state["message"]
    with_indicators = lambda r: result_output(r, indicators=[i.name for i in find_indicators(message)])  # noqa: E731
    return {"screen": run_task_step(runtime, "fraud-screen", lambda run_id: with_indicators(
        runtime.context.cascade.run("fraud", text=message, run_id=run_id)), with_indicators)}


def answer(state: TriageState, runtime: Runtime[WorkflowContext]) -> dict:
    cascade, message, k = runtime.context.cascade, state["message"], state.get("k", 4)

    def call(run_id: str) -> dict:
        try:
            return _reply(cascade.ask(message, k, run_id=run_id))
        except InvalidInputError as exc:
            if "no documents ingested" not in exc.message:
                raise
            return {"run_id": None, "outcome": "no_documents", "answer": None, "tier": None, "decided_by": None,
                    "reason": exc.message}

    rebuild = lambda result: _reply(qa.answer_result(result, cascade.documents.search(message, k)))  # noqa: E731
    return {"reply": run_task_step(runtime, "answer", call, rebuild)}


def _reply(result: qa.AnswerResult) -> dict:
    return result_output(result, answer=result.answer, citations=[c.model_dump() for c in result.citations],
                         checks=[c.model_dump() for c in result.checks])


def handoff(state: TriageState, runtime: Runtime[WorkflowContext]) -> dict:
    return {"handoff": human_step(runtime, "handoff", state["message"])}


def disposition(state: TriageState, ctx: WorkflowContext) -> dict:
    steps = [("intent", state.get("intent")), ("fraud-screen", state.get("screen")), ("answer", state.get("reply")),
             ("handoff", state.get("handoff"))]
    path = [{"step": name, "run_id": out.get("run_id"), "outcome": out.get("outcome", "resolved"),
             "answer": out.get("answer"), "tier": out.get("tier"), "decided_by": out.get("decided_by"),
             "reviewer": out.get("reviewer")} for name, out in steps if out]
    flagged = _is_fraud(state)
    if flagged:
        ctx.cascade.audit.note_params(ctx.run_id, flagged="fraud")
        kind, reply, citations = "flagged_fraud", None, []
    elif state.get("handoff"):
        kind, reply, citations = "answered_by_person", state["handoff"]["answer"], []
    else:
        reply_step = state["reply"]
        kind = "answered" if reply_step.get("decided_by") == "model" else "answered_by_person"
        reply, citations = reply_step["answer"], reply_step.get("citations", [])
    return {"disposition": {"disposition": kind, "flagged": flagged, "intent": state["intent"]["answer"],
                            "fraud_verdict": state["screen"]["answer"], "reply": reply, "citations": citations,
                            "path": path}}


def _is_fraud(state: TriageState) -> bool:
    return state["screen"]["answer"] == "fraud"


def _answered(state: TriageState) -> str:
    reply = state["reply"]
    return "disposition" if reply.get("answer") and reply.get("outcome") in ("accepted", "needs_review") else "handoff"


def build() -> StateGraph:
    graph = StateGraph(TriageState, context_schema=WorkflowContext)
    graph.add_node("intent", routed_task("classify", lambda s: {"text": s["message"], "labels": s["labels"]}, "intent"))
    graph.add_node("screen", screen)
    graph.add_node("answer", answer)
    graph.add_node("handoff", handoff)
    graph.add_node("disposition", function_step("disposition", disposition))
    graph.add_edge(START, "intent")
    graph.add_edge("intent", "screen")
    graph.add_conditional_edges("screen", lambda s: "disposition" if _is_fraud(s) else "answer", ["disposition", "answer"])
    graph.add_conditional_edges("answer", _answered, ["disposition", "handoff"])
    graph.add_edge("handoff", "disposition")
    graph.add_edge("disposition", END)
    return graph


def _summarize(output: dict) -> tuple[str, str]:
    path = " -> ".join(f"{p['step']}: {p['answer'] if p['step'] != 'answer' else p['outcome']} "
                       f"({p['tier'] or p['reviewer'] or '-'})" for p in output["path"])
    return output["disposition"], path


SPEC = register(WorkflowSpec(
    name=NAME, description="classify intent, screen for fraud, answer from the documents or hand to a person",
    build=build, make_input=make_input, options="labels=a,b,c (intents); k=4 (passages)", check_options=_options,
    output_key="disposition", summarize=_summarize))
