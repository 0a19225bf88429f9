"""Held-out figures of a classifier (accuracy, AUROC of its confidence for correctness, ECE) and
the temperature that calibrates its confidence."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from routers import auroc, expected_calibration_error

__all__ = ["fit_temperature", "quality"]


def quality(probs: np.ndarray, gold: np.ndarray) -> dict[str, float | None]:
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    correct = predicted == gold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # AUROC is undefined when all are right
        area = auroc(confidence, correct)
    return {"accuracy": round(float(correct.mean()), 4),
            "auroc": None if math.isnan(area) else round(area, 4),
            "ece": round(expected_calibration_error(confidence, correct), 4)}


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The T in (0.05, 20) minimising the negative log-likelihood of softmax(logits / T)."""
    def nll(t: float) -> float:
        return -float(log_softmax(logits / t, axis=1)[np.arange(len(gold)), gold].mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)
