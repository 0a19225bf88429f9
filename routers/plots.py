"""PNG plots of calibration and risk-coverage, for reports and calibration artifacts.

Figures are built with ``matplotlib.figure.Figure`` directly rather than through pyplot:
no global backend switch, no figure registry to leak, safe in workers without a display.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from .metrics import (
    area_under_risk_coverage,
    expected_calibration_error,
    reliability_table,
    risk_coverage_curve,
)

__all__ = ["plot_reliability", "plot_risk_coverage"]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Figure.savefig renders with the Agg canvas for PNG; pyplot is never involved.
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path


def plot_reliability(
    conf: ArrayLike,
    correct: ArrayLike,
    path: str | Path,
    title: str = "Reliability",
    n_bins: int = 15,
) -> Path:
    """Reliability diagram (accuracy per confidence bin vs the diagonal) with bin counts.

    Returns the path written.
    """
    table = reliability_table(conf, correct, n_bins)
    ece = expected_calibration_error(conf, correct, n_bins)
    lower = np.array([row.lower for row in table])
    width = 1.0 / n_bins
    counts = np.array([row.count for row in table])
    accuracy = np.array([row.accuracy if row.count else 0.0 for row in table])

    fig = Figure(figsize=(5, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(lower, accuracy, width=width, align="edge", edgecolor="black", label="accuracy")
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.set(ylim=(0, 1), ylabel="accuracy", title=f"{title} (ECE {ece:.3f}, n={counts.sum()})")
    top.legend(loc="upper left")
    bottom.bar(lower, counts, width=width, align="edge", color="grey")
    bottom.set(xlim=(0, 1), xlabel="confidence", ylabel="count")
    return _save(fig, path)


def plot_risk_coverage(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    path: str | Path,
    title: str = "Risk-coverage",
) -> Path:
    """Risk-coverage curves, one per named ``(conf, correct)`` pair, AURC in the legend.

    Returns the path written.
    """
    if not curves:
        raise ValueError("curves must name at least one (conf, correct) pair")
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    for name, (conf, correct) in curves.items():
        coverage, risk, _ = risk_coverage_curve(conf, correct)
        aurc = area_under_risk_coverage(conf, correct)
        ax.step(coverage, risk, where="pre", label=f"{name} (AURC {aurc:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, None), xlabel="coverage (share kept)",
           ylabel="risk (error among kept)", title=title)
    ax.legend(loc="upper left")
    return _save(fig, path)
