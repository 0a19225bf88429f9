"""`contract-review`: chunk the contract, then one branch per clause category (LangGraph `Send`):
retrieve, extract, check and escalate in that category's cascade run; then a risk report with, per
category, whether the clause is present, the clause, its risk, which tier (or person) answered and
the checks.

    chunk -> Send(category: c) for each c -> report

A category whose run ends needs_review pauses its branch until a person resolves the run: the
answer "absent" means no such clause; any other answer is taken as the clause.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from agents import contracts
from agents.contract_categories import risk_for, validate_categories

from orchestrator.core.contract_review import PASSAGES, ContractPlan, check_k, plan_review, review_category
from orchestrator.workflows.registry import WorkflowSpec, check_options, register, text_list
from orchestrator.workflows.steps import WorkflowContext, function_step, result_output, run_task_step

NAME = "contract-review"
ABSENT = "absent"  # a reviewer's answer meaning the category has no clause in the contract


class ContractState(TypedDict, total=False):
    contract: str
    categories: list[str] | None
    k: int
    plan: dict
    clauses: Annotated[list[dict], operator.add]  # one per category branch, in completion order
    report: dict


class CategoryState(TypedDict):
    contract: str
    plan: dict
    category: str


def _options(options: dict[str, Any]) -> None:
    check_options(NAME, options, {"categories": "clause categories", "k": "passages per category"})
    validate_categories(text_list(options.get("categories")))
    check_k(options.get("k", PASSAGES))


def make_input(text: str, options: dict[str, Any]) -> ContractState:
    _options(options)
    state: ContractState = {"contract": text, "categories": text_list(options.get("categories")),
                            "k": options.get("k", PASSAGES)}
    contracts.validate_contract(text)
    return state


def chunk(state: ContractState, ctx: WorkflowContext) -> dict:
    plan = plan_review(ctx.cascade.embed, state["contract"], state.get("categories"), state.get("k", PASSAGES))
    return {"plan": {"sha256": plan.sha256, "chars": plan.chars, "chunks": plan.chunks,
                     "shown": {c: [p.model_dump() for p in shown] for c, shown in plan.shown.items()}}}


def fan_out(state: ContractState) -> list[Send]:
    return [Send("category", {"contract": state["contract"], "plan": state["plan"], "category": c})
            for c in state["plan"]["shown"]]


def category(state: CategoryState, runtime: Runtime[WorkflowContext]) -> dict:
    p, text, name = state["plan"], state["contract"], state["category"]
    plan = ContractPlan(p["sha256"], p["chars"], p["chunks"],
                        {c: [contracts.ShownPassage(**s) for s in shown] for c, shown in p["shown"].items()})
    cascade = runtime.context.cascade
    output = run_task_step(
        runtime, f"category:{name}",
        lambda run_id: _clause(review_category(cascade.run, text, plan, name, run_id=run_id)),
        lambda result: _clause(contracts.clause_result(result, name, plan.shown[name], text)))
    if output["decided_by"] == "person":
        present = output["answer"].strip().lower() != ABSENT
        risk, reason = risk_for(name, present)
        output = {**output, "present": present, "clause": output["answer"] if present else None, "risk": risk,
                  "risk_reason": reason}
    return {"clauses": [output]}


def _clause(r: contracts.ContractClauseResult) -> dict:
    return result_output(r, category=r.category, present=r.present, clause=r.clause, risk=r.risk,
                         risk_reason=r.risk_reason, checks=[{"name": c.name, "passed": c.passed} for c in r.checks])


def report(state: ContractState, ctx: WorkflowContext) -> dict:
    by_category = {c["category"]: c for c in state["clauses"]}
    rows = [{"category": name, "present": c["present"], "clause": c["clause"], "risk": c["risk"],
             "risk_reason": c["risk_reason"], "tier": c["tier"] if c["decided_by"] == "model" else "person",
             "reviewer": c.get("reviewer"), "outcome": c["outcome"], "checks": c["checks"], "run_id": c["run_id"]}
            for name in state["plan"]["shown"] if (c := by_category.get(name))]
    return {"report": {"contract_sha256": state["plan"]["sha256"], "chars": state["plan"]["chars"],
                       "chunks": state["plan"]["chunks"], "categories": rows}}


def build() -> StateGraph:
    graph = StateGraph(ContractState, context_schema=WorkflowContext)
    graph.add_node("chunk", function_step("chunk", chunk))
    graph.add_node("category", category)
    graph.add_node("report", function_step("report", report))
    graph.add_edge(START, "chunk")
    graph.add_conditional_edges("chunk", fan_out, ["category"])
    graph.add_edge("category", "report")
    graph.add_edge("report", END)
    return graph


def _summarize(output: dict) -> tuple[str, str]:
    rows = output["categories"]
    flagged = [r["category"] for r in rows if r["risk"] in ("high", "flag")]
    answer = f"flagged: {', '.join(flagged)}" if flagged else "no risk flagged"
    return answer, "; ".join(f"{r['category']}: {'present' if r['present'] else 'absent' if r['present'] is False else '?'}"
                             f" ({r['tier'] or '-'}, risk {r['risk']})" for r in rows)


SPEC = register(WorkflowSpec(
    name=NAME, description="chunk, one branch per clause category (extract, check, escalate), risk report",
    build=build, make_input=make_input, options="categories=A,B (default: five); k=3 (passages)",
    check_options=_options,
    output_key="report", summarize=_summarize))
