"""How good is a confidence: calibration (ECE, Brier, reliability) and ranking (AUROC,
risk-coverage). Every function takes ``conf`` (1-D, in [0, 1]) and ``correct`` (1-D booleans).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score

__all__ = [
    "ReliabilityBin",
    "reliability_table",
    "expected_calibration_error",
    "brier_score",
    "auroc",
    "risk_coverage_curve",
    "area_under_risk_coverage",
]


class ReliabilityBin(NamedTuple):
    """One equal-width confidence bin; ``mean_conf`` and ``accuracy`` are NaN when empty."""

    lower: float
    upper: float
    count: int
    mean_conf: float
    accuracy: float


def _inputs(conf: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(conf, dtype=float)
    y = np.asarray(correct)
    if c.ndim != 1 or c.size == 0 or y.shape != c.shape:
        raise ValueError(
            f"conf and correct must be non-empty 1-D of equal length, got {c.shape}, {y.shape}"
        )
    if not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
        raise ValueError("conf must lie in [0, 1] (calibrated confidences, not raw scores)")
    if not np.isin(y, [0, 1]).all():
        raise ValueError("correct must be booleans or 0/1")
    return c, y.astype(bool)


def reliability_table(
    conf: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> list[ReliabilityBin]:
    """Per equal-width bin on [0, 1]: bounds, count, mean confidence and accuracy.

    Bins are [lower, upper), except the last which also holds confidence 1.0. All
    ``n_bins`` bins are returned, empty ones included, so tables line up across models.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    c, y = _inputs(conf, correct)
    index = np.minimum((c * n_bins).astype(int), n_bins - 1)
    table = []
    for b in range(n_bins):
        in_bin = index == b
        count = int(in_bin.sum())
        mean_conf = float(c[in_bin].mean()) if count else math.nan
        accuracy = float(y[in_bin].mean()) if count else math.nan
        table.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, count, mean_conf, accuracy))
    return table


def expected_calibration_error(conf: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> float:
    """Mean |accuracy - mean confidence| over equal-width bins, weighted by bin size."""
    table = reliability_table(conf, correct, n_bins)
    n = sum(row.count for row in table)
    gaps = (row.count * abs(row.accuracy - row.mean_conf) for row in table if row.count)
    return float(sum(gaps) / n)


def brier_score(conf: ArrayLike, correct: ArrayLike) -> float:
    """Mean squared difference between confidence and correctness (lower is better).

    Computed directly: sklearn's ``brier_score_loss`` needs the positive label spelled out
    when a sample is all correct or all wrong, which is common on small slices.
    """
    c, y = _inputs(conf, correct)
    return float(np.mean((c - y) ** 2))


def auroc(conf: ArrayLike, correct: ArrayLike) -> float:
    """Probability that a random correct answer has higher confidence than a wrong one.

    Returns NaN (with a RuntimeWarning saying why) when every answer is correct or every
    answer is wrong: with one class present, ranking quality is undefined, not 0 or 1.
    """
    c, y = _inputs(conf, correct)
    if y.all() or not y.any():
        warnings.warn(
            f"AUROC undefined: all {y.size} answers are {'correct' if y.all() else 'wrong'}",
            RuntimeWarning,
            stacklevel=2,
        )
        return math.nan
    return float(roc_auc_score(y, c))


def risk_coverage_curve(
    conf: ArrayLike, correct: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Error rate among kept answers as the threshold is lowered.

    Returns:
        ``(coverage, risk, thresholds)``, one entry per distinct confidence in descending
        order: keeping answers with confidence >= ``thresholds[i]`` keeps a share
        ``coverage[i]`` of them, of which a share ``risk[i]`` is wrong.
    """
    c, y = _inputs(conf, correct)
    thresholds, kept, errors = _kept_errors(c, y)
    return kept / c.size, errors / kept, thresholds


def _kept_errors(
    conf: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct confidence, descending: the value, items at or above it, errors among them.

    Tied confidences are kept or rejected together, so there is one row per distinct value.
    """
    order = np.argsort(-conf, kind="stable")
    c_sorted, wrong = conf[order], ~correct[order].astype(bool)
    ends = np.append(np.flatnonzero(np.diff(c_sorted)), conf.size - 1)
    return c_sorted[ends], ends + 1, np.cumsum(wrong)[ends]


def area_under_risk_coverage(conf: ArrayLike, correct: ArrayLike) -> float:
    """Area under the risk-coverage step curve (AURC; lower is better).

    Without ties it equals the mean, over k = 1..n, of the error rate among the k most
    confident answers.
    """
    coverage, risk, _ = risk_coverage_curve(conf, correct)
    return float(np.sum(risk * np.diff(coverage, prepend=0.0)))
