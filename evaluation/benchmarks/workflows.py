"""`cascade bench workflows`: both shipped workflows on shared data, on the configured ladder.

- contract-review on the first N CUAD contracts x the given categories;
- support-triage on a message set built from the shared data: banking77 test messages of a few
  intents (the workflow's intent labels are those intents' names), SMS Spam Collection spam messages
  (gold verdict fraud; banking77 messages are legit), with a small handbook (HANDBOOK below) ingested
  as the documents the answer step reads.

No person is at hand, so a simulated reviewer resolves each pause through the review queue with the
gold answer where the data has one (the intent, the verdict, CUAD's presence and first gold span)
and a fixed reply for hand-offs; those steps count as decided by a person. Reported per workflow:
the outcome table, seconds per case (wall time, simulated reviews included; they take no time of
their own) and per step (the child runs' latency), and how many steps each tier (or the person)
decided.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from orchestrator.core.cascade import Cascade
from orchestrator.core.config import LlamaCppTier, Settings, load_settings
from orchestrator.workflows import Workflows
from orchestrator.workflows.runner import WorkflowRun
from evaluation.cuad import load_cuad
from evaluation.datasets import load_banking77, load_sms_spam

INTENTS = ["lost or stolen card", "card arrival", "exchange rate", "top up failed"]
HANDBOOK = """# Lost or stolen card

If your card is lost or stolen, freeze it at once in the app under Cards > Freeze card, then order a
replacement card. A frozen card cannot be used for payments or cash withdrawals.

# Card delivery

A new card is posted within 2 working days and usually arrives within 5 to 7 working days. You can
track its delivery in the app under Cards > Track card.

# Exchange rates

Card payments in another currency use the Visa or Mastercard rate of the day, with no markup on
weekdays and a 0.5% markup at weekends.

# Top-ups

A top-up can fail when your card issuer declines it or the card has expired. Try another card, or top
up by bank transfer, which is free.
"""
REPLY = "A support agent will reply to you by email."


def _ladder(settings: Settings, data_dir: Path) -> Settings:
    tiers = [t.model_copy(update={"n_threads": 1}) if isinstance(t, LlamaCppTier) else t for t in settings.tiers]
    return settings.model_copy(update={"tiers": tiers, "data_dir": data_dir, "database_url": None})


def support_messages(n_banking: int, n_spam: int, root: str | Path | None = None) -> list[dict]:
    """The first n_banking banking77 test messages of INTENTS (round-robin over them) and n_spam spam
    messages of the SMS collection, interleaved by position; each with its gold intent and verdict."""
    by_intent = defaultdict(list)
    for e in load_banking77("test", root).examples:
        if e.label in INTENTS:
            by_intent[e.label].append(e.text)
    banking = [{"text": by_intent[INTENTS[i % len(INTENTS)]][i // len(INTENTS)], "intent": INTENTS[i % len(INTENTS)],
                "verdict": "legit"} for i in range(n_banking)]
    spam = [{"text": e.text, "intent": None, "verdict": "fraud"}
            for e in load_sms_spam(root).examples if e.label == "spam"][:n_spam]
    return banking + spam


def _resolve(cascade: Cascade, run: WorkflowRun, gold: Callable[[str, dict], str]) -> tuple[WorkflowRun, int]:
    """The simulated reviewer: answer every pause with `gold(step, review run)` until none is left."""
    reviews = 0
    while run.status == "paused" and run.waiting:
        waiting = run.waiting[0]
        review_run = cascade.audit.get_run(waiting["review_run_id"])
        cascade.resolve_review(review_run["id"], gold(waiting["step"], review_run), "simulated-reviewer")
        reviews += 1
        run = Workflows(cascade).status(run.run_id)
    return run, reviews


def _steps(cascade: Cascade, run_id: str) -> list[dict]:
    """Each task step of a run: its name, the tier (or person) that decided it, its run's seconds."""
    children = {c["id"]: c for c in cascade.audit.child_runs(run_id)}
    rows = []
    for e in cascade.audit.workflow_events(run_id):
        child = children.get(e["child_run_id"] or "")
        if e["kind"] != "step" or child is None:
            continue
        decided = "person" if child.get("review") else (child["final_tier"] or "none")
        rows.append({"step": e["step"].split(":")[0], "task": child["task"], "decided_by": decided,
                     "seconds": (child["latency_ms"] or 0.0) / 1000})
    return rows


def _summary(cases: list[dict]) -> dict:
    steps = [s for c in cases for s in c["steps"]]
    per_step = defaultdict(list)
    for s in steps:
        per_step[s["step"]].append(s["seconds"])
    tiers = defaultdict(Counter)
    for s in steps:
        tiers[s["step"]][s["decided_by"]] += 1
    return {"cases": len(cases), "outcomes": dict(Counter(c["outcome"] for c in cases)),
            "seconds_per_case_median": statistics.median(c["seconds"] for c in cases) if cases else None,
            "seconds_per_step_median": {k: statistics.median(v) for k, v in per_step.items()},
            "decided_by_per_step": {k: dict(v) for k, v in tiers.items()},
            "reviews": sum(c["reviews"] for c in cases)}


def bench_support(cascade: Cascade, messages: list[dict], progress=None) -> dict:
    cases = []
    for i, m in enumerate(messages, start=1):
        def gold(step: str, review_run: dict) -> str:
            return {"intent": m["intent"] or "top up failed", "fraud-screen": m["verdict"]}.get(step, REPLY)

        started = time.perf_counter()
        run, reviews = _resolve(cascade, Workflows(cascade).run("support-triage", m["text"], labels=INTENTS), gold)
        out = run.output or {}
        cases.append({"outcome": out.get("disposition", run.status), "seconds": time.perf_counter() - started,
                      "reviews": reviews, "steps": _steps(cascade, run.run_id), "gold_verdict": m["verdict"],
                      "gold_intent": m["intent"], "intent": out.get("intent"), "verdict": out.get("fraud_verdict")})
        if progress:
            progress(f"support {i}/{len(messages)}: {cases[-1]['outcome']} in {cases[-1]['seconds']:.1f} s")
    summary = _summary(cases)
    banking = [c for c in cases if c["gold_intent"]]
    summary.update({
        "intent_right": sum(c["intent"] == c["gold_intent"] for c in banking), "banking_messages": len(banking),
        "spam_flagged": sum(c["outcome"] == "flagged_fraud" for c in cases if c["gold_verdict"] == "fraud"),
        "spam_messages": sum(c["gold_verdict"] == "fraud" for c in cases),
        "banking_flagged": sum(c["outcome"] == "flagged_fraud" for c in banking)})
    return summary


def bench_contracts(cascade: Cascade, n_contracts: int, categories: list[str], root=None, progress=None) -> dict:
    cuad = load_cuad(root, limit=n_contracts)
    cases, rows = [], []
    for i, contract in enumerate(cuad.contracts, start=1):
        def gold(step: str, review_run: dict) -> str:
            g = contract.gold[step.split(":", 1)[1]]
            return g.spans[0] if g.present and g.spans else "absent"

        started = time.perf_counter()
        run = Workflows(cascade).run("contract-review", contract.text(), categories=categories)
        run, reviews = _resolve(cascade, run, gold)
        report = (run.output or {}).get("categories", [])
        rows += [{**r, "gold_present": contract.gold[r["category"]].present} for r in report]
        cases.append({"outcome": run.status, "seconds": time.perf_counter() - started, "reviews": reviews,
                      "steps": _steps(cascade, run.run_id)})
        if progress:
            progress(f"contract {i}/{len(cuad.contracts)}: {run.status} in {cases[-1]['seconds']:.1f} s")
    summary = _summary(cases)
    by_model = [r for r in rows if r["tier"] != "person"]
    summary.update({
        "categories": categories, "category_rows": len(rows),
        "present_right": sum(r["present"] == r["gold_present"] for r in rows),
        "model_decided": len(by_model), "model_present_right": sum(r["present"] == r["gold_present"] for r in by_model),
        "risk": dict(Counter(r["risk"] for r in rows))})
    return summary


def workflows_bench(n_contracts: int, categories: list[str], n_banking: int, n_spam: int,
                    config: Path | None = None, root: str | Path | None = None,
                    progress: Callable[[str], None] | None = None) -> dict:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = _ladder(load_settings(config), Path(tmp))
        handbook = Path(tmp) / "handbook.md"
        handbook.write_text(HANDBOOK)
        with Cascade(settings) as cascade:
            cascade.add_documents([handbook])
            support = bench_support(cascade, support_messages(n_banking, n_spam, root), progress)
            contracts = bench_contracts(cascade, n_contracts, categories, root, progress) if n_contracts else None
    return {"ladder": [t.name for t in settings.tiers], "support_triage": support, "contract_review": contracts}
