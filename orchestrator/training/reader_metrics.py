"""How well a reader did on held-out rows: SQuAD-2 exact match and token F1, abstention, confidence AUROC.

Answers are normalised as SQuAD's evaluation does (case, punctuation, articles and whitespace
dropped). On an unanswerable row, abstaining scores 1 and any span 0. A reading is "right" when its
F1 with the gold answer is at least 0.5 (abstaining, on an unanswerable row); the AUROC says how well
the reader's confidence separates right readings from wrong ones.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise_answer(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.casefold().translate(_PUNCTUATION)).split()


def exact_match(prediction: str | None, gold: str | None) -> float:
    if gold is None or prediction is None:
        return float(gold is None and prediction is None)
    return float(normalise_answer(prediction) == normalise_answer(gold))


def f1(prediction: str | None, gold: str | None) -> float:
    if gold is None or prediction is None:
        return float(gold is None and prediction is None)
    p, g = Counter(normalise_answer(prediction)), Counter(normalise_answer(gold))
    common = sum((p & g).values())
    return 2 * common / (sum(p.values()) + sum(g.values())) if common else 0.0  # 2PR / (P + R)


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve (None when only one class is present)."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores))


def heldout_report(examples: Sequence[Any], readings: Sequence[Any], full: bool = False) -> dict[str, Any]:
    """`f1` over every row (what early stopping watches); with `full`, the breakdown by answerable and
    unanswerable rows and the confidence's AUROC for right readings."""
    answers = [r.span.text if r.span is not None else None for r in readings]
    scores = [f1(a, e.answer) for a, e in zip(answers, examples)]
    report: dict[str, Any] = {"rows": len(examples), "f1": float(np.mean(scores))}
    if not full:
        return report
    answerable = [i for i, e in enumerate(examples) if e.answer is not None]
    unanswerable = [i for i, e in enumerate(examples) if e.answer is None]
    right = [s >= 0.5 for s in scores]
    confidence = [r.confidence for r in readings]
    if answerable:
        report["answerable"] = {
            "rows": len(answerable),
            "exact_match": round(float(np.mean([exact_match(answers[i], examples[i].answer) for i in answerable])), 4),
            "f1": round(float(np.mean([scores[i] for i in answerable])), 4),
            "abstained": round(float(np.mean([answers[i] is None for i in answerable])), 4)}
    if unanswerable:
        report["unanswerable"] = {"rows": len(unanswerable),
                                  "abstained": round(float(np.mean([answers[i] is None for i in unanswerable])), 4)}
    report["confidence_auroc"] = auroc(confidence, right)
    report["f1"] = round(report["f1"], 4)
    return report
