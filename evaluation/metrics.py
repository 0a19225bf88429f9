"""How good is a routing policy: the metrics of the router papers, on per-item outcomes.

Confidence quality (AUROC, ECE) lives in `routers.metrics`; this module adds what compares whole
policies: escalation and silent-failure rates, latency percentiles, and the curve metrics

- APGR and CPT (RouteLLM, Ong et al. 2024, "RouteLLM: Learning to Route LLMs with Preference
  Data"; code lm-sys/RouteLLM `routellm/evals/evaluate.py`): on the curve of quality against the
  share of calls sent to the large model, APGR is the area between the curve and the small model's
  quality divided by the area between the large and the small model's (so a random router, the
  straight line between the two, scores 0.5); CPT(p) is the share of large-model calls at which
  the curve first recovers p of the small-to-large quality gap;
- AIQ (RouterBench, Hu et al. 2024, "RouterBench: A Benchmark for Multi-LLM Routing System";
  code withmartian/routerbench `evaluation/AIQ.py`): the area under a router's non-decreasing
  convex hull of (cost, quality) points, divided by the cost range. The hull is what mixing the
  router's operating points can reach: at a budget c, the best quality of any mixture costing at
  most c. RouterBench's code integrates from the cheapest point, extends the hull flat to the
  largest cost among the compared routers and divides by that cost (the range starts at 0);
  `aiq` does the same with the range as arguments.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "aiq", "apgr", "calls_to_recover", "escalation_rate", "latency_percentiles", "nondecreasing_hull",
    "silent_failure_rate",
]


def _flags(values: ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(values)
    if v.ndim != 1 or v.size == 0 or not np.isin(v, [0, 1]).all():
        raise ValueError(f"{name} must be a non-empty 1-D array of booleans or 0/1")
    return v.astype(bool)


def escalation_rate(escalated: ArrayLike) -> float:
    """Share of items answered by the large tier."""
    return float(_flags(escalated, "escalated").mean())


def silent_failure_rate(escalated: ArrayLike, correct: ArrayLike) -> float:
    """Share of all items whose small-tier answer was kept (not escalated) and was wrong: the
    errors nobody is told about, since the router vouched for them."""
    esc, ok = _flags(escalated, "escalated"), _flags(correct, "correct")
    if esc.shape != ok.shape:
        raise ValueError(f"escalated and correct differ in length: {esc.size} vs {ok.size}")
    return float(np.mean(~esc & ~ok))


def latency_percentiles(latency: ArrayLike, percentiles: tuple[float, ...] = (50, 95)) -> dict[str, float]:
    """{"p50": ..., "p95": ...} of per-item latencies, linearly interpolated (numpy's default)."""
    v = np.asarray(latency, dtype=float)
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all() or (v < 0).any():
        raise ValueError("latency must be a non-empty 1-D array of finite non-negative numbers")
    return {f"p{p:g}": float(np.percentile(v, p)) for p in percentiles}


def _curve(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by x (ties keep their given order), checked finite and of equal length."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"a curve needs at least two (x, y) points of equal length, got {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("curve points must be finite")
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


# Below this quality gap (absolute) the gap metrics are left undefined: they divide by the gap, and
# on SMS a 0.001 gap between two near-equal tiers turned the oracle's APGR into 81.
MIN_GAP = 0.01


def _gap(quality_small: float, quality_large: float, what: str) -> float | None:
    gap = quality_large - quality_small
    if gap < MIN_GAP:
        why = ("there is no gap to recover" if gap <= 0 else
               f"a gap under {MIN_GAP} is too small to normalise by")
        warnings.warn(f"{what} undefined: the large tier's quality {quality_large:.4f} does not exceed the small "
                      f"tier's {quality_small:.4f} by {MIN_GAP} or more; {why}", RuntimeWarning, stacklevel=3)
        return None
    return gap


def apgr(calls_large: ArrayLike, quality: ArrayLike, quality_small: float, quality_large: float) -> float:
    """Average performance gap recovered (RouteLLM): (area under the quality curve - area under the
    small model's quality) / (area under the large model's - area under the small model's), all
    over the curve's own range of large-call shares (trapezoids, as RouteLLM's `np.trapz`).

    1 = the large model's quality at every call share; 0.5 = random routing (the straight line);
    NaN (with a RuntimeWarning) when the large tier is not better than the small one by MIN_GAP.
    """
    x, y = _curve(calls_large, quality)
    gap = _gap(quality_small, quality_large, "APGR")
    if gap is None or x[-1] == x[0]:
        return math.nan
    area = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))
    return (area - quality_small * (x[-1] - x[0])) / (gap * (x[-1] - x[0]))


def calls_to_recover(calls_large: ArrayLike, quality: ArrayLike, quality_small: float, quality_large: float,
                     share: float) -> float:
    """CPT(share) (RouteLLM): the smallest share of large-model calls at which the piecewise-linear
    quality curve reaches quality_small + share * (quality_large - quality_small).

    RouteLLM interpolates with `np.interp(target, quality, calls)`, which assumes quality rises
    with calls; the first crossing is the same on such curves and stays right on bumpy ones.
    NaN when the curve never reaches the target or there is no gap.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must lie in [0, 1], got {share}")
    x, y = _curve(calls_large, quality)
    gap = _gap(quality_small, quality_large, f"CPT({share:.0%})")
    if gap is None:
        return math.nan
    target = quality_small + share * gap
    # A small tolerance: a curve ending exactly at the large model's quality must reach 100%.
    reached = np.flatnonzero(y >= target - 1e-12)
    if reached.size == 0:
        return math.nan
    i = int(reached[0])
    if i == 0 or y[i] == y[i - 1]:
        return float(x[i])
    return float(x[i - 1] + (target - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


def nondecreasing_hull(cost: ArrayLike, quality: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the non-decreasing convex hull of (cost, quality) points (RouterBench): the
    upper hull from the cheapest point (the best quality among the cheapest) up to the best-quality
    point; past it, spending more buys nothing, so the hull continues flat (not returned)."""
    x, y = _curve(cost, quality)
    # Among equal costs only the best quality matters.
    best: dict[float, float] = {}
    for xi, yi in zip(x, y):
        best[xi] = max(yi, best.get(xi, -math.inf))
    xs = np.array(sorted(best))
    ys = np.array([best[v] for v in xs])
    top = int(np.argmax(ys))  # first (cheapest) point of maximal quality
    hull: list[int] = []
    for i in range(top + 1):  # Andrew's monotone chain, upper half
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = (xs[hull[-2]], ys[hull[-2]]), (xs[hull[-1]], ys[hull[-1]])
            if (x2 - x1) * (ys[i] - y1) - (y2 - y1) * (xs[i] - x1) >= 0:  # hull[-1] on or below the chord
                hull.pop()
            else:
                break
        hull.append(i)
    return xs[hull], ys[hull]


def aiq(cost: ArrayLike, quality: ArrayLike, cost_max: float | None = None, cost_min: float = 0.0) -> float:
    """Average improvement in quality (RouterBench): the area under the non-decreasing convex hull
    of a router's (cost, quality) points over [cost_min, cost_max], divided by the range.

    Below the router's cheapest point it cannot operate and counts as quality 0; past its best
    point the hull stays flat. `cost_max` defaults to the router's own largest cost; to compare
    routers, pass the largest cost among all of them (RouterBench's choice, with cost_min 0).
    """
    hx, hy = nondecreasing_hull(cost, quality)
    hi = float(np.max(np.asarray(cost, dtype=float))) if cost_max is None else float(cost_max)
    if not hi > cost_min:
        raise ValueError(f"the cost range [{cost_min}, {hi}] is empty; give cost_max > cost_min")
    if hx[-1] < hi:  # extend flat to the end of the range
        hx, hy = np.append(hx, hi), np.append(hy, hy[-1])
    # Clip the hull to the range, interpolating at the ends.
    grid = np.unique(np.clip(np.concatenate([hx, [cost_min, hi]]), cost_min, hi))
    inside = (grid >= hx[0]) & (grid <= hx[-1])
    values = np.where(inside, np.interp(grid, hx, hy), 0.0)
    if hx[0] > cost_min:  # the step up at the cheapest point: integrate from there, not across the jump
        start = int(np.searchsorted(grid, hx[0]))
        grid, values = grid[start:], values[start:]
    area = float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(grid))) if grid.size > 1 else 0.0
    return area / (hi - cost_min)
