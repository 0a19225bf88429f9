"""Escalation policies replayed offline on what each tier answered, and their figures.

Each tier has run once per item (`TierOutcomes` holds its answers, cost and latency), so every
policy is a choice of which items go to the large tier, compared on the very same outputs.

Two ways to pay: a *cascade* runs the small tier on every item and the large one on escalated items
(it decides from the small tier's output), a *router* picks one tier before any model runs and pays
only that one (RouteLLM's setting). Always-small, always-large, random and the oracle are routers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from evaluation.metrics import (
    aiq,
    apgr,
    calls_to_recover,
    escalation_rate,
    latency_percentiles,
    silent_failure_rate,
)
from routers.metrics import auroc, expected_calibration_error

__all__ = [
    "PolicyResult", "TierOutcomes", "accuracy", "always_large", "always_small", "compare_policies", "curves",
    "escalate_lowest", "knn_win_rate", "oracle", "oracle_order", "positive_f1", "random_at_rate", "scored_policy",
    "summarize", "sweep",
]

Quality = Callable[[np.ndarray, np.ndarray], float]  # (final answers, gold) -> quality


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(pred == gold))


def positive_f1(positive: int) -> Quality:
    """F1 of one label (fraud flagging: the fraud label), 0 when it is never predicted nor present."""
    def f1(pred: np.ndarray, gold: np.ndarray) -> float:
        tp = int(np.sum((pred == positive) & (gold == positive)))
        denominator = int(np.sum(pred == positive) + np.sum(gold == positive))
        return 2 * tp / denominator if denominator else 0.0
    return f1


@dataclass(frozen=True)
class TierOutcomes:
    """Per item (arrays of length n): both tiers' answers as label indices, the gold label, each
    tier's cost and latency, and the time every policy pays anyway (e.g. retrieving examples)."""

    gold: np.ndarray
    small_pred: np.ndarray
    large_pred: np.ndarray
    small_cost: np.ndarray
    large_cost: np.ndarray
    small_ms: np.ndarray
    large_ms: np.ndarray
    shared_ms: np.ndarray

    def __post_init__(self) -> None:
        n = self.gold.shape[0]
        for name, value in vars(self).items():
            if np.shape(value) != (n,):
                raise ValueError(f"TierOutcomes.{name} has shape {np.shape(value)}; every field needs ({n},)")

    @property
    def small_correct(self) -> np.ndarray:
        return self.small_pred == self.gold

    @property
    def large_correct(self) -> np.ndarray:
        return self.large_pred == self.gold

    def __len__(self) -> int:
        return int(self.gold.shape[0])


@dataclass(frozen=True)
class PolicyResult:
    """One policy's per-item choices and what they cost; `confidence` is its score of keeping the
    small answer (compared with the small answer's correctness for AUROC and ECE); `curve` holds
    (share of large calls, quality, mean cost per item) over its threshold sweep, if it has one."""

    name: str
    escalated: np.ndarray
    final: np.ndarray
    cost: np.ndarray
    latency_ms: np.ndarray
    confidence: np.ndarray | None = None
    curve: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _result(name: str, t: TierOutcomes, escalated: np.ndarray, cascade: bool, extra_cost: ArrayLike = 0.0,
            extra_ms: ArrayLike = 0.0, confidence: np.ndarray | None = None, curve=None) -> PolicyResult:
    esc = np.asarray(escalated, dtype=bool)
    small_paid = np.ones_like(esc) if cascade else ~esc
    cost = np.where(small_paid, t.small_cost, 0.0) + np.where(esc, t.large_cost, 0.0) + extra_cost
    ms = t.shared_ms + np.where(small_paid, t.small_ms, 0.0) + np.where(esc, t.large_ms, 0.0) + extra_ms
    return PolicyResult(name, esc, np.where(esc, t.large_pred, t.small_pred), cost, ms, confidence, curve)


def escalate_lowest(score: ArrayLike, m: int) -> np.ndarray:
    """Mask escalating the m items with the lowest keep-score (ties broken by item order)."""
    s = np.asarray(score, dtype=float)
    mask = np.zeros(s.shape, dtype=bool)
    mask[np.argsort(s, kind="stable")[:m]] = True
    return mask


def sweep(t: TierOutcomes, score: ArrayLike, quality: Quality, cascade: bool, extra_cost: ArrayLike = 0.0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The policy's curve: for m = 0..n, escalate the m lowest-scored items; returns (share of large
    calls, quality, mean cost per item). Every threshold of the score is one of these points."""
    order = np.argsort(np.asarray(score, dtype=float), kind="stable")
    n = len(t)
    calls, qualities, costs = np.arange(n + 1) / n, np.empty(n + 1), np.empty(n + 1)
    final = t.small_pred.copy()
    # Escalating item i adds the large tier's cost; a router also stops paying the small tier's.
    step = t.large_cost - (0.0 if cascade else t.small_cost)
    total = float(np.sum(t.small_cost + extra_cost))
    for m in range(n + 1):
        if m:
            i = order[m - 1]
            final[i] = t.large_pred[i]
            total += float(step[i])
        qualities[m] = quality(final, t.gold)
        costs[m] = total / n
    return calls, qualities, costs


def always_small(t: TierOutcomes) -> PolicyResult:
    return _result("always-small", t, np.zeros(len(t), dtype=bool), cascade=False)


def always_large(t: TierOutcomes) -> PolicyResult:
    return _result("always-large", t, np.ones(len(t), dtype=bool), cascade=False)


def oracle_order(t: TierOutcomes) -> np.ndarray:
    """A keep-score putting first the items only the large tier gets right, then those both get
    wrong, both right, and last those only the small tier gets right."""
    s, l = t.small_correct, t.large_correct
    return np.select([~s & l, ~s & ~l, s & l], [0.0, 1.0, 2.0], default=3.0)


def oracle(t: TierOutcomes, quality: Quality) -> PolicyResult:
    """Escalates exactly the items the large tier fixes: the best any router can do at its rate."""
    score = oracle_order(t)
    return _result("oracle", t, score == 0, cascade=False, curve=sweep(t, score, quality, cascade=False))


def random_at_rate(t: TierOutcomes, m: int, quality: Quality, seeds: Sequence[int] = range(20)) -> list[PolicyResult]:
    """Random routing of exactly m items to the large tier, once per seed (summarize averages
    them); each carries the straight-line curve a random router has in expectation, averaged too."""
    n = len(t)
    results, grid = [], np.linspace(0, 1, 21)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        score = rng.random(n)
        calls, q, c = sweep(t, score, quality, cascade=False)
        pick = np.round(grid * n).astype(int)
        results.append(_result("random", t, escalate_lowest(score, m), cascade=False,
                               curve=(calls[pick], q[pick], c[pick])))
    return results


def scored_policy(name: str, t: TierOutcomes, score: ArrayLike, quality: Quality, cascade: bool,
                  escalate: np.ndarray, extra_cost: ArrayLike = 0.0, extra_ms: ArrayLike = 0.0) -> PolicyResult:
    """A router with a keep-score in [0, 1] (calibrated confidence, self-verification P(yes), 1 -
    neighbours' win rate): the operating point `escalate` and the curve over all its thresholds."""
    s = np.asarray(score, dtype=float)
    return _result(name, t, escalate, cascade, extra_cost, extra_ms, confidence=s,
                   curve=sweep(t, s, quality, cascade, extra_cost))


def knn_win_rate(fit_vectors: ArrayLike, fit_wins: ArrayLike, vectors: ArrayLike, k: int = 10) -> np.ndarray:
    """Prompt-only routing score (RouteLLM's similarity-weighted idea on nearest neighbours): per
    item, the similarity-weighted share of its k nearest labelled items (cosine; vectors unit-norm)
    on which the large tier beat the small one. Decided from the input alone, before any model runs."""
    fit, v = np.asarray(fit_vectors, dtype=float), np.asarray(vectors, dtype=float)
    wins = np.asarray(fit_wins, dtype=float)
    if fit.ndim != 2 or v.ndim != 2 or fit.shape[1] != v.shape[1] or wins.shape != (fit.shape[0],):
        raise ValueError(f"need fit vectors [m, d], {fit.shape[0]} win flags and vectors [n, d]; "
                         f"got {fit.shape}, {wins.shape}, {v.shape}")
    k = min(k, fit.shape[0])
    sims = v @ fit.T
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    weights = np.clip(np.take_along_axis(sims, nearest, axis=1), 1e-6, None)
    return (weights * wins[nearest]).sum(axis=1) / weights.sum(axis=1)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def summarize(runs: Sequence[PolicyResult], t: TierOutcomes, quality: Quality, cost_max: float) -> dict:
    """The figures of one policy (averaged over `runs` when it is randomised): quality, escalation
    rate, cost (total and per item), latency p50/p95, silent failures, AUROC and ECE of its
    confidence, and from its curve APGR, the calls to recover 50% and 80% of the gap, and AIQ
    (over the cost range [0, cost_max] shared by the compared policies)."""
    q_small, q_large = quality(t.small_pred, t.gold), quality(t.large_pred, t.gold)
    rows = []
    for r in runs:
        lat = latency_percentiles(r.latency_ms)
        row = {"quality": quality(r.final, t.gold), "escalation_rate": escalation_rate(r.escalated),
               "cost_total": float(r.cost.sum()), "cost_per_item": float(r.cost.mean()),
               "latency_p50_ms": lat["p50"], "latency_p95_ms": lat["p95"],
               "silent_failure_rate": silent_failure_rate(r.escalated, r.final == t.gold),
               "auroc": math.nan, "ece": math.nan, "apgr": math.nan, "calls_50": math.nan, "calls_80": math.nan}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # undefined figures become None, not noise
            if r.confidence is not None:
                row["auroc"] = auroc(np.clip(r.confidence, 0, 1), t.small_correct)
                row["ece"] = expected_calibration_error(np.clip(r.confidence, 0, 1), t.small_correct)
            if r.curve is not None:
                calls, q, _ = r.curve
                row["apgr"] = apgr(calls, q, q_small, q_large)
                row["calls_50"] = calls_to_recover(calls, q, q_small, q_large, 0.5)
                row["calls_80"] = calls_to_recover(calls, q, q_small, q_large, 0.8)
        costs, qs = (r.curve[2], r.curve[1]) if r.curve is not None else ([row["cost_per_item"]], [row["quality"]])
        row["aiq"] = aiq(np.append(costs, costs[-1]), np.append(qs, qs[-1]), cost_max=cost_max) if cost_max > 0 else math.nan
        rows.append(row)
    return {"policy": runs[0].name, "runs": len(runs),
            **{key: _nan_to_none(float(np.mean([row[key] for row in rows]))) for key in rows[0]}}


def compare_policies(t: TierOutcomes, quality: Quality, escalated: np.ndarray, cascade_conf: ArrayLike,
                     knn_keep: ArrayLike, p_yes: ArrayLike, *, knn_ms: ArrayLike = 0.0, verify_cost: ArrayLike = 0.0,
                     verify_ms: ArrayLike = 0.0) -> tuple[list[list[PolicyResult]], list[dict]]:
    """Every policy of `cascade eval` on the same outcomes, and its summary row: always-small,
    always-large, random at the cascade's rate, the oracle, the calibrated cascade (`escalated`
    by its threshold, `cascade_conf` its confidence), the prompt-only router (`knn_keep`: the score
    to keep tier 1) and self-verification (`p_yes`); the two routers at the cascade's rate."""
    m = int(np.sum(escalated))
    policies = [
        [always_small(t)], [always_large(t)], random_at_rate(t, m, quality), [oracle(t, quality)],
        [scored_policy("calibrated cascade", t, cascade_conf, quality, cascade=True, escalate=escalated)],
        [scored_policy("prompt-only kNN router", t, knn_keep, quality, cascade=False,
                       escalate=escalate_lowest(knn_keep, m), extra_ms=knn_ms)],
        [scored_policy("self-verification", t, p_yes, quality, cascade=True, escalate=escalate_lowest(p_yes, m),
                       extra_cost=verify_cost, extra_ms=verify_ms)],
    ]
    cost_max = max(float(np.max(r.curve[2])) if r.curve is not None else float(r.cost.mean())
                   for runs in policies for r in runs)
    return policies, [summarize(runs, t, quality, cost_max) for runs in policies]


def curves(policies: Sequence[Sequence[PolicyResult]]) -> dict[str, dict[str, list[float]]]:
    """Each swept policy's cost-quality curve, JSON-ready (random's is the straight line: left out)."""
    return {runs[0].name: {"calls": runs[0].curve[0].tolist(), "quality": runs[0].curve[1].tolist(),
                           "cost_per_item": runs[0].curve[2].tolist()}
            for runs in policies if runs[0].curve is not None and runs[0].name != "random"}
