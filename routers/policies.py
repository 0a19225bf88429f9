"""Threshold policies: when the small model's answer is kept and when it is escalated.

A policy is fitted offline on confidences (plus correctness labels for accuracy
guarantees) and returns a JSON-able `Threshold`, stored as a versioned artifact. At run
time an answer is kept iff ``accept(confidence, threshold)``: ``confidence >= threshold``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta

from .metrics import _kept_errors

__all__ = [
    "Threshold", "ClassThresholds", "accept", "EscalationRatePolicy",
    "GuaranteedAccuracyPolicy", "BudgetPolicy", "select_within_budget",
]


@dataclass(frozen=True)
class Threshold:
    """A fitted threshold and how it was chosen (for the artifact and the audit log).

    ``value``: keep answers with confidence >= value; ``math.inf`` escalates everything
    (serialised as ``None``). ``target`` is the policy's target (escalation rate, accuracy
    or share); ``n`` and ``escalation_rate`` describe the fitting data; ``kept_error``,
    ``bound`` (upper bound on the kept error rate) and ``delta`` (its failure probability)
    are set by policies with labels; ``fallback`` marks a class's copy of the global
    threshold; ``reason`` says why, in one sentence.
    """

    value: float
    policy: str
    target: float
    n: int
    escalation_rate: float
    kept_error: float | None = None
    bound: float | None = None
    delta: float | None = None
    fallback: bool = False
    reason: str = ""

    @property
    def escalates_all(self) -> bool:
        return math.isinf(self.value) and self.value > 0

    def accept(self, confidence: ArrayLike) -> bool | np.ndarray:
        return accept(confidence, self.value)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = None if math.isinf(self.value) else float(self.value)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Threshold:
        value = math.inf if d["value"] is None else float(d["value"])
        return cls(**{**d, "value": value})


def accept(confidence: ArrayLike, threshold: float | Threshold) -> bool | np.ndarray:
    """Keep the small model's answer iff confidence >= threshold (elementwise for arrays)."""
    value = threshold.value if isinstance(threshold, Threshold) else float(threshold)
    kept = np.asarray(confidence, dtype=float) >= value
    return bool(kept) if kept.ndim == 0 else kept


@dataclass(frozen=True)
class ClassThresholds:
    """A default threshold plus per-label overrides, for tasks whose errors cost differently.

    E.g. fraud screening: wrongly keeping "legit" lets fraud through, so "legit" needs a
    stricter (higher) threshold than "fraud". Labels are compared as strings (JSON keys).
    """

    default: Threshold
    per_label: dict[str, Threshold] = field(default_factory=dict)

    def threshold_for(self, label: Any) -> Threshold:
        return self.per_label.get(str(label), self.default)

    def accept(self, confidence: ArrayLike, label: Any) -> bool | np.ndarray:
        """Like `accept`, with each item's threshold chosen by its predicted label."""
        if np.ndim(label) == 0:
            return accept(confidence, self.threshold_for(label))
        values = np.array([self.threshold_for(lab).value for lab in label], dtype=float)
        return np.asarray(confidence, dtype=float) >= values

    def to_dict(self) -> dict[str, Any]:
        per_label = {k: t.to_dict() for k, t in self.per_label.items()}
        return {"default": self.default.to_dict(), "per_label": per_label}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassThresholds:
        per_label = {k: Threshold.from_dict(t) for k, t in d.get("per_label", {}).items()}
        return cls(default=Threshold.from_dict(d["default"]), per_label=per_label)


def _scores(confidences: ArrayLike) -> np.ndarray:
    c = np.asarray(confidences, dtype=float)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"confidences must be a non-empty 1-D array, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("confidences contain NaN or infinite values")
    return c


def _check_share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


@lru_cache(maxsize=64)
def _default_min_kept(alpha: float, delta: float) -> int:
    """Fewest kept items m on which m * alpha / 2 errors give an upper bound <= alpha."""
    low = 1
    while True:  # doubling windows: cheap for alpha = 0.1 (38), still fast for 0.001
        m = np.arange(low, 2 * low + 1)
        errors = np.floor(m * alpha / 2)
        ok = beta.ppf(1 - delta, errors + 1, m - errors) <= alpha
        if ok.any():
            return int(m[np.argmax(ok)])
        low *= 2


def _max_count(share: float, n: int) -> int:
    # The epsilon keeps e.g. 0.3 * 10 = 2.9999999999999996 from rounding down to 2.
    return min(n, math.floor(share * n + 1e-9))


@dataclass(frozen=True)
class EscalationRatePolicy:
    """Escalate about ``target_rate`` of items; needs no labels.

    The threshold is the ``target_rate`` quantile of recent confidences. It fixes cost,
    not quality: use it until labels exist, then switch to `GuaranteedAccuracyPolicy`.
    """

    target_rate: float
    name: ClassVar[str] = "escalation_rate"

    def __post_init__(self) -> None:
        _check_share("target_rate", self.target_rate)

    def fit(self, confidences: ArrayLike) -> Threshold:
        c = _scores(confidences)
        value = math.inf if self.target_rate >= 1 else float(np.quantile(c, self.target_rate))
        rate = float(np.mean(c < value))
        why = f"{self.target_rate:.0%} quantile of {c.size} confidences escalates {rate:.1%}"
        return Threshold(value, self.name, self.target_rate, c.size, rate, reason=why)


@dataclass(frozen=True)
class GuaranteedAccuracyPolicy:
    """Lowest threshold whose kept answers are accurate enough, with high probability.

    Learn-then-test (Angelopoulos et al. 2021) with fixed-sequence testing: candidate
    thresholds (distinct calibration confidences) are tested from strictest to loosest;
    each passes if the one-sided Clopper-Pearson upper bound (level 1 - delta) of the error
    rate among kept items is <= 1 - target_accuracy. The walk stops at the first failure
    and keeps the last pass; if none passes, everything escalates. Testing in a fixed
    order needs no multiplicity correction: with probability >= 1 - delta over the
    calibration draw, kept answers on new exchangeable data err at rate <= 1 - target.

    The walk starts at the strictest candidate keeping >= ``min_kept`` items: a bound on a
    handful of items never passes, so starting at the top would always stop at once. The
    default depends on the targets only, never the labels: the fewest items on which an
    error rate of half the allowed one would pass. (The guarantee is exact for thresholds
    fixed in advance; for thresholds taken from the data it is the usual close
    approximation, checked by simulation in the tests.)
    """

    target_accuracy: float
    delta: float = 0.05
    min_kept: int | None = None
    name: ClassVar[str] = "guaranteed_accuracy"

    def __post_init__(self) -> None:
        if not 0.0 < self.target_accuracy < 1.0:
            raise ValueError(f"target_accuracy must lie in (0, 1), got {self.target_accuracy}")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must lie in (0, 1), got {self.delta}")
        if self.min_kept is not None and self.min_kept < 1:
            raise ValueError(f"min_kept must be >= 1, got {self.min_kept}")

    def fit(self, confidences: ArrayLike, correct: ArrayLike) -> Threshold:
        c, ok = _scores(confidences), np.asarray(correct)
        if ok.shape != c.shape or not np.isin(ok, [0, 1]).all():
            raise ValueError(f"correct must be {c.size} booleans (or 0/1), got shape {ok.shape}")
        alpha, level = 1.0 - self.target_accuracy, 1.0 - self.delta
        values, kept, errors = _kept_errors(c, ok)  # one candidate per distinct confidence
        # One-sided Clopper-Pearson upper bound; it is 1 when every kept item is wrong.
        upper = np.where(errors < kept, beta.ppf(level, errors + 1, kept - errors), 1.0)
        min_kept = self.min_kept or _default_min_kept(alpha, self.delta)
        start = int(np.argmax(kept >= min_kept))  # kept[-1] == n, so valid if n >= min_kept
        passed = upper[start:] <= alpha
        n_passed = passed.size if passed.all() else int(np.argmin(passed))
        common = dict(policy=self.name, target=self.target_accuracy, n=c.size, delta=self.delta)
        if c.size < min_kept:
            why = f"{c.size} labelled items; {min_kept} needed to test error <= {alpha:.3g}"
            return Threshold(math.inf, escalation_rate=1.0, reason=f"{why}; escalate all", **common)
        if n_passed == 0:
            why = f"no threshold keeps error <= {alpha:.3g} with probability >= {level:.0%}"
            return Threshold(math.inf, escalation_rate=1.0, bound=float(upper[start]), **common,
                             reason=f"{why} on {c.size} items; escalate all")
        j = start + n_passed - 1
        return Threshold(
            float(values[j]), escalation_rate=float(1.0 - kept[j] / c.size),
            kept_error=float(errors[j] / kept[j]), bound=float(upper[j]), **common,
            reason=(f"keeps {kept[j]} of {c.size} items; kept-error upper bound "
                    f"{upper[j]:.3g} <= {alpha:.3g} with probability >= {level:.0%}"),
        )

    def fit_per_class(self, confidences: ArrayLike, correct: ArrayLike,
                      predicted_label: ArrayLike, min_per_class: int = 100) -> ClassThresholds:
        """One threshold per predicted label, each with its own guarantee for that label.

        A label predicted fewer than ``min_per_class`` times gets a copy of the global
        threshold marked ``fallback=True``. Each label's guarantee holds with probability
        >= 1 - delta; all of them at once with >= 1 - (number of labels) * delta.
        """
        c, ok = _scores(confidences), np.asarray(correct)
        labels = np.array([str(lab) for lab in np.asarray(predicted_label).ravel()])
        if labels.size != c.size:
            raise ValueError(f"predicted_label has {labels.size} items, confidences {c.size}")
        default = self.fit(c, ok)
        per_label: dict[str, Threshold] = {}
        for label in map(str, np.unique(labels)):
            mask = labels == label
            if (count := int(mask.sum())) >= min_per_class:
                per_label[label] = self.fit(c[mask], ok[mask])
                continue
            why = f"only {count} items predicted {label!r} (< {min_per_class})"
            per_label[label] = replace(default, fallback=True, reason=(
                f"{why}; using the global threshold. Global: {default.reason}"))
        return ClassThresholds(default=default, per_label=per_label)


@dataclass(frozen=True)
class BudgetPolicy:
    """Escalate at most ``max_escalation_share`` of a job's items, least confident first."""

    max_escalation_share: float
    name: ClassVar[str] = "budget"

    def __post_init__(self) -> None:
        _check_share("max_escalation_share", self.max_escalation_share)

    def fit(self, confidences: ArrayLike) -> Threshold:
        c = _scores(confidences)
        m = _max_count(self.max_escalation_share, c.size)
        # Items strictly below the (m+1)-th smallest confidence number at most m (ties
        # at that value are all kept, so the cap is never exceeded).
        value = math.inf if m >= c.size else float(np.sort(c)[m])
        rate = float(np.mean(c < value))
        why = f"at most {m} of {c.size} items may escalate; {rate:.1%} do"
        return Threshold(value, self.name, self.max_escalation_share, c.size, rate, reason=why)


def select_within_budget(
    confidences: ArrayLike,
    max_share: float | None = None,
    costs: ArrayLike | None = None,
    max_spend: float | None = None,
    threshold: float | Threshold | None = None,
) -> np.ndarray:
    """Indices of the items to escalate, least confident first, within every given cap.

    Items are taken in ascending confidence until the next one would exceed
    ``max_share`` of all items or push the summed ``costs`` past ``max_spend``. With
    ``threshold``, only items the threshold rejects are candidates.
    """
    c = _scores(confidences)
    if max_share is None and max_spend is None:
        raise ValueError("give max_share and/or max_spend (with costs) to cap escalation")
    order = np.argsort(c, kind="stable")
    if threshold is not None:
        order = order[~accept(c[order], threshold)]
    if max_share is not None:
        _check_share("max_share", max_share)
        order = order[: _max_count(max_share, c.size)]
    if max_spend is not None:
        if costs is None:
            raise ValueError("max_spend needs costs: the escalation cost of each item")
        cost = np.asarray(costs, dtype=float)
        if cost.shape != c.shape or not np.isfinite(cost).all() or (cost < 0).any():
            raise ValueError(f"costs must be {c.size} finite non-negative numbers")
        spent = np.cumsum(cost[order])
        # Tolerate float rounding of the running sum, never a real overspend.
        tolerance = 1e-9 * max(1.0, abs(max_spend))
        order = order[: int(np.searchsorted(spent, max_spend + tolerance, side="right"))]
    return order.astype(np.intp)
