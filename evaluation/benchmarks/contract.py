"""`cascade bench contract-spans`: how far the span check can be trusted on CUAD, with tier 1 alone.

For N CUAD contracts x the given categories, each (contract, category) runs through the cascade as
`Cascade.contract` runs it, paused before any escalation (stop_after_tier=0: tier 2 is never called),
on the first llama.cpp tier with one thread. Reported:

- span precision: of the clauses the span check accepts, the share truly in the contract (same
  words after whitespace and case normalisation) and the share overlapping a CUAD gold span of that
  category (by offsets in the contract; by normalised containment when a gold span cannot be located);
- presence accuracy of tier 1's valid answers against the `-Answer` column, with the all-absent and
  all-present baselines next to it, and of the answers tier 1 would keep;
- retrieval recall: of the pairs CUAD marks present, the share where a shown passage overlaps a gold
  span (the model cannot find a clause it is not shown);
- kept / escalated / invalid counts, and seconds per (contract, category), retrieval included.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

from agents.contract_categories import validate_categories
from agents.contracts import ClauseOutput, ContractClauseResult, locate
from agents.qa import normalise

from orchestrator.core.cascade import Cascade
from orchestrator.core.config import LlamaCppTier, Settings, load_settings
from orchestrator.core.contract_review import PASSAGES, review_contract
from evaluation.cuad import CuadContract, load_cuad


def _tier1_ladder(settings: Settings, data_dir: Path) -> Settings:
    """The first llama.cpp tier on one thread, then the rest of the ladder (never reached: runs pause
    before escalating), in a throwaway data dir."""
    first = next(t for t in settings.tiers if isinstance(t, LlamaCppTier))
    rest = [t for t in settings.tiers if t is not first]
    return settings.model_copy(update={"tiers": [first.model_copy(update={"n_threads": 1}), *rest],
                                       "data_dir": data_dir, "database_url": None})


def contract_spans(n_contracts: int, categories: list[str], k: int = PASSAGES, config: Path | None = None,
                   root: str | Path | None = None, progress: Callable[[str], None] | None = None) -> dict:
    import torch

    torch.set_num_threads(1)  # the embedding model too: one thread, like the llama.cpp tier
    names = validate_categories(categories)
    cuad = load_cuad(root, limit=n_contracts)
    rows, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        settings = _tier1_ladder(load_settings(config), Path(tmp))
        with Cascade(settings) as cascade:
            run = partial(cascade.run, stop_after_tier=0)
            embed = lambda texts: cascade._embedder().embed(texts)
            for i, contract in enumerate(cuad.contracts, start=1):
                text = contract.text()
                started = time.perf_counter()
                review = review_contract(run, embed, text, names, k)
                seconds.append((time.perf_counter() - started) / len(names))
                rows += [_row(r, contract, text) for r in review.results]
                if progress:
                    progress(f"{i}/{len(cuad.contracts)} contracts, {seconds[-1]:.1f} s per category")
    return _summary(rows, seconds, n_contracts=len(cuad.contracts), categories=names, k=k,
                    model=settings.tiers[0].model_path)


def _row(result: ContractClauseResult, contract: CuadContract, text: str) -> dict:
    gold = contract.gold[result.category]
    gold_at = [locate(s, text) for s in gold.spans]
    first = result.attempts[0] if result.attempts else None
    output = ClauseOutput.model_validate_json(first.answer) if first and first.answer else None
    checks = {c.name: c.passed for c in first.checks} if first else {}
    row = {"category": result.category, "gold_present": gold.present, "valid": output is not None,
           "present": output.present if output else None, "decision": first.decision if first else "error",
           "span_accepted": bool(output and output.present and checks.get("span")),
           "shown_gold": any(at and p.start < at[1] and at[0] < p.end for p in result.passages for at in gold_at)}
    if row["span_accepted"]:
        clause = normalise(output.clause)
        at = locate(output.clause, text)
        row["in_contract"] = clause in normalise(text)
        row["overlaps_gold"] = any(
            (g and at and at[0] < g[1] and g[0] < at[1]) or clause in normalise(s) or normalise(s) in clause
            for s, g in zip(gold.spans, gold_at))
    return row


def _share(rows: list[dict], key: str) -> float | None:
    return round(sum(r[key] for r in rows) / len(rows), 3) if rows else None


def _summary(rows: list[dict], seconds: list[float], **params) -> dict:
    accepted = [r for r in rows if r["span_accepted"]]
    valid = [r for r in rows if r["valid"]]
    for r in valid:
        r["presence_right"] = r["present"] == r["gold_present"]
    gold_present = [r for r in rows if r["gold_present"]]
    decisions = Counter(r["decision"] for r in rows)
    per_category = {}
    for name in params["categories"]:
        mine = [r for r in rows if r["category"] == name]
        mine_valid = [r for r in mine if r["valid"]]
        per_category[name] = {"pairs": len(mine), "gold_present": sum(r["gold_present"] for r in mine),
                              "valid": len(mine_valid), "presence_accuracy": _share(mine_valid, "presence_right"),
                              "span_accepted": sum(r["span_accepted"] for r in mine),
                              "overlaps_gold": sum(r.get("overlaps_gold", False) for r in mine)}
    return {
        **params, "pairs": len(rows),
        "span_accepted_clauses": len(accepted),
        "span_precision_in_contract": _share(accepted, "in_contract"),
        "span_precision_overlaps_gold": _share(accepted, "overlaps_gold"),
        "valid_outputs": len(valid),
        "presence_accuracy": _share(valid, "presence_right"),
        "all_absent_baseline": round(sum(not r["gold_present"] for r in valid) / len(valid), 3) if valid else None,
        "all_present_baseline": _share(valid, "gold_present"),
        "presence_accuracy_kept": _share([r for r in valid if r["decision"] == "accept"], "presence_right"),
        "retrieval_recall": _share(gold_present, "shown_gold"),
        "kept": decisions["accept"], "escalated": decisions["escalate"],
        "invalid": len(rows) - len(valid), "other_decisions": {d: n for d, n in decisions.items()
                                                                 if d not in ("accept", "escalate")},
        "seconds_per_pair_mean": round(statistics.fmean(seconds), 2) if seconds else None,
        "seconds_per_pair_median": round(statistics.median(seconds), 2) if seconds else None,
        "per_category": per_category,
    }
