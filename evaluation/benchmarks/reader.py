"""Measurements of a trained extractive reader (`cascade bench reader`), on test splits only.

HaluEval (evaluation.reader_data's fixed test rows; the knowledge is the one passage, as `ask`
shows it): exact match and token F1 against the right answer, right-rate by `halueval_right`
(an abstention is not right), AUROC of the served confidence for right, and on unanswerable pairs
(a test question with another test row's knowledge) the share it abstains on and the share it
answers (every answer there is wrong). Each question is read alone, so its milliseconds are a
question's.

CUAD (test contracts only; the reader trained on the train contracts): per (contract, category),
the passages the product's own retrieval shows (orchestrator.core.contract_review), then one
reading. Presence accuracy against the -Answer column; clause overlap: the token Jaccard of the
kept clause with the closest gold clause, over pairs where both say present; a found clause
"matches" at Jaccard >= 0.5 (the CUAD paper's criterion). Precision at 80 % recall and AUPR rank
the pairs by the reader's margin (best span minus null score): a predicted pair is a true positive
when its best span matches a gold clause; recall counts every gold-present pair (so clauses that
retrieval never shows cap it).
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import numpy as np

from agents import contracts
from agents.contract_categories import CATEGORIES
from agents.results import CascadeResult

from evaluation.benchmarks.qa_checks import halueval_right
from orchestrator.core.contract_review import PASSAGES, review_contract
from orchestrator.training.reader_metrics import auroc, exact_match, f1

MATCH_JACCARD = 0.5
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def bench_halueval(reader, split) -> dict[str, Any]:
    answerable = [e for e in split.test if e.answer is not None]
    unanswerable = [e for e in split.test if e.answer is None]
    readings, ms = [], []
    for e in answerable + unanswerable:
        started = time.perf_counter()
        readings.append(reader.read(e.question, [e.context]))
        ms.append(_ms(started))
    on_answerable, on_unanswerable = readings[:len(answerable)], readings[len(answerable):]
    answers = [r.span.text if r.span else None for r in on_answerable]
    golds = [row["right_answer"] for row in split.test_rows]
    right = [a is not None and halueval_right(a, g) for a, g in zip(answers, golds)]
    confidence = [r.confidence for r in on_answerable]
    mixed_right = right + [r.span is None for r in on_unanswerable]
    kept = {}
    for t in THRESHOLDS:
        chosen = [ok for ok, c in zip(mixed_right, confidence + [r.confidence for r in on_unanswerable]) if c >= t]
        kept[str(t)] = {"kept_share": round(len(chosen) / len(mixed_right), 4),
                        "right_of_kept": round(float(np.mean(chosen)), 4) if chosen else None}
    answered = [i for i, a in enumerate(answers) if a is not None]
    return {
        "questions": len(answerable), "unanswerable_pairs": len(unanswerable),
        "exact_match": round(float(np.mean([exact_match(a or "", g) for a, g in zip(answers, golds)])), 4),
        "token_f1": round(float(np.mean([f1(a or "", g) for a, g in zip(answers, golds)])), 4),
        "right_rate": round(float(np.mean(right)), 4),
        "abstained_on_answerable": round(float(np.mean([a is None for a in answers])), 4),
        "confidence_auroc": _round(auroc(confidence, right)),
        "confidence_auroc_answered_only": _round(auroc([confidence[i] for i in answered], [right[i] for i in answered])),
        "confidence_auroc_with_unanswerable": _round(auroc(confidence + [r.confidence for r in on_unanswerable],
                                                           mixed_right)),
        "unanswerable_abstained": round(float(np.mean([r.span is None for r in on_unanswerable])), 4),
        "unanswerable_wrong_answer_rate": round(float(np.mean([r.span is not None for r in on_unanswerable])), 4),
        "kept_at_threshold": kept,
        "ms_per_question_median": round(statistics.median(ms), 1),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def jaccard(a: str, b: str) -> float:
    x, y = _tokens(a), _tokens(b)
    return len(x & y) / len(x | y) if x | y else 0.0


def shown_passages(embed, text: str, categories: list[str], k: int = PASSAGES) -> dict[str, list[str]]:
    """The passages the product's retrieval shows for each category (review_contract, recording only)."""
    shown: dict[str, list[str]] = {}

    def record(task, *, category, passages, **_) -> CascadeResult:  # stands in for Cascade.run
        shown[category] = passages
        return CascadeResult(run_id="", task=task, outcome="failed", answer=None, confidence=None, tier_name=None,
                             reason="retrieval only", attempts=[], latency_ms=0.0, cost=0.0)
    review_contract(record, embed, text, categories, k)
    return shown


def pr_figures(scores: list[float], hits: list[bool], positives: int) -> dict[str, float | None]:
    """AUPR (average precision: the mean of the precision at each true positive, over all positives)
    and the best precision at recall >= 0.8, for pairs ranked by score."""
    if not positives:
        return {"aupr": None, "precision_at_80_recall": None}
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp, precision_sum, at_80 = 0, 0.0, 0.0
    for rank, i in enumerate(order, start=1):
        if hits[i]:
            tp += 1
            precision_sum += tp / rank
            if tp / positives >= 0.8:
                at_80 = max(at_80, tp / rank)
    return {"aupr": round(precision_sum / positives, 4), "precision_at_80_recall": round(at_80, 4)}


def bench_cuad(reader, test_contracts, embed, categories: list[str] | None = None) -> dict[str, Any]:
    categories = categories or list(CATEGORIES)
    rows, retrieval_ms, read_ms = [], [], []
    for contract in test_contracts:
        text = contract.text()
        started = time.perf_counter()
        shown = shown_passages(embed, text, categories)
        retrieval_ms.append(_ms(started) / len(categories))
        for category in categories:
            started = time.perf_counter()
            reading = reader.read(contracts.question(category), shown[category])
            read_ms.append(_ms(started))
            gold = contract.gold[category]
            best = reading.best.text if reading.best else ""
            overlap = max((jaccard(best, g) for g in gold.spans), default=0.0)
            rows.append({"category": category, "gold": gold.present, "said": reading.span is not None,
                         "score": reading.margin if np.isfinite(reading.margin) else -1e9,
                         "overlap": overlap, "hit": gold.present and overlap >= MATCH_JACCARD})
    per_category = {c: _cuad_figures([r for r in rows if r["category"] == c]) for c in categories}
    pooled = _cuad_figures(rows)
    auprs = [f["aupr"] for f in per_category.values() if f["aupr"] is not None]
    return {"contracts": len(test_contracts), "categories": len(categories), "pairs": len(rows), "pooled": pooled,
            "mean_aupr_over_categories": round(float(np.mean(auprs)), 4) if auprs else None,
            "per_category": per_category,
            "ms_per_pair_reader_median": round(statistics.median(read_ms), 1),
            "ms_per_pair_retrieval_median": round(statistics.median(retrieval_ms), 1)}


def _cuad_figures(rows: list[dict]) -> dict[str, Any]:
    both = [r["overlap"] for r in rows if r["gold"] and r["said"]]
    positives = sum(r["gold"] for r in rows)
    kept = [r for r in rows if r["said"]]
    return {"pairs": len(rows), "gold_present": positives,
            "presence_accuracy": round(float(np.mean([r["gold"] == r["said"] for r in rows])), 4),
            "said_present": len(kept),
            "kept_clause_matches_gold": round(float(np.mean([r["hit"] for r in kept])), 4) if kept else None,
            "clause_overlap_mean": round(float(np.mean(both)), 4) if both else None,
            **pr_figures([r["score"] for r in rows], [r["hit"] for r in rows], positives)}
