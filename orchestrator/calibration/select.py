"""Choosing a calibrator by cross-validation on the fit split alone, so the test split stays unseen.

No method wins everywhere: on SMS spam (2 labels, strong label bias) vector scaling corrects the
bias that batch debiasing over-corrects; on banking77 (77 labels, 300 items) its two parameters per
label overfit and Platt scaling is better calibrated. The score is the held-out Brier score of the
confidence for "the answer is right", the quantity a confidence threshold relies on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from agents.errors import InvalidInputError
from routers import brier_score

from orchestrator.calibration.fitting import calibrated_predictions, fit_artifact

__all__ = ["CANDIDATES", "choose_method"]

CANDIDATES = ("vector", "platt", "isotonic", "temperature")
_NO_HASH = "0" * 64


def choose_method(logprobs, gold_index, labels: Sequence[str], folds: int = 5,
                  seed: int = 0) -> tuple[str, dict[str, float | None]]:
    """The candidate with the lowest mean held-out Brier score over `folds` stratified folds of the
    fit items, and every candidate's score (None: it cannot be fitted on these folds, e.g. isotonic
    below its label minimum). When no candidate can be fitted on the folds (a fit split too small
    to cross-validate), temperature scaling: one parameter, the least able to overfit."""
    z, gold = np.asarray(logprobs, dtype=float), np.asarray(gold_index)
    scores: dict[str, float | None] = {}
    for method in CANDIDATES:
        held_out = []
        try:
            for train, test in _folds(gold, folds, seed):
                artifact = fit_artifact("cv", z[train], gold[train], labels, _NO_HASH, "cv", method=method,
                                        max_escalation_share=1.0)
                pred, conf = calibrated_predictions(artifact, z[test])
                held_out.append(brier_score(conf, pred == gold[test]))
        except InvalidInputError:
            scores[method] = None
            continue
        scores[method] = float(np.mean(held_out))
    fitted = {m: s for m, s in scores.items() if s is not None}
    return (min(fitted, key=fitted.__getitem__) if fitted else "temperature"), scores


def _folds(gold: np.ndarray, folds: int, seed: int):
    """Stratified folds (each keeps the label mix), or plain ones when a label has fewer items than
    folds (banking77: 77 labels on a few hundred items)."""
    counts = np.bincount(gold)
    if counts[counts > 0].min() >= folds:
        return StratifiedKFold(folds, shuffle=True, random_state=seed).split(gold, gold)
    return KFold(folds, shuffle=True, random_state=seed).split(gold)
