"""The plots of `cascade eval`: every policy on one cost-quality figure, and reliability diagrams.

Built on `matplotlib.figure.Figure` without pyplot, as `routers.plots` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evaluation.policies import PolicyResult, TierOutcomes
from routers.plots import plot_reliability

__all__ = ["write_plots"]

_STYLE = {"calibrated cascade": ("tab:blue", "-"), "prompt-only kNN router": ("tab:orange", "-"),
          "self-verification": ("tab:green", "-"), "oracle": ("tab:purple", ":"), "random": ("tab:grey", "--")}


def _policy_figure(result: dict[str, Any], policies: Sequence[Sequence[PolicyResult]], quality_name: str) -> Figure:
    """Left: quality against the share of calls to the large tier (RouteLLM's view, APGR in the
    legend); right: quality against mean cost per item (RouterBench's view, AIQ in the legend)."""
    summary = {row["policy"]: row for row in result["policies"]}
    fig = Figure(figsize=(12, 4.8))
    by_calls, by_cost = fig.subplots(1, 2)
    for runs in policies:
        name = runs[0].name
        row = summary[name]
        colour, style = _STYLE.get(name, ("black", "-"))
        if runs[0].curve is not None:
            calls = np.mean([r.curve[0] for r in runs], axis=0)
            quality = np.mean([r.curve[1] for r in runs], axis=0)
            cost = np.mean([r.curve[2] for r in runs], axis=0)
            apgr = "-" if row["apgr"] is None else f"{row['apgr']:.3f}"
            by_calls.plot(calls, quality, color=colour, linestyle=style, label=f"{name} (APGR {apgr})")
            by_cost.plot(cost * 1000, quality, color=colour, linestyle=style, label=f"{name} (AIQ {row['aiq']:.3f})")
        # Each policy's operating point (the random one averaged over its seeds).
        marker = {"always-small": "s", "always-large": "D"}.get(name, "o")
        by_calls.scatter([row["escalation_rate"]], [row["quality"]], color=colour, marker=marker, zorder=3,
                         label=name if runs[0].curve is None else None)
        by_cost.scatter([row["cost_per_item"] * 1000], [row["quality"]], color=colour, marker=marker, zorder=3,
                        label=name if runs[0].curve is None else None)
    title = (f"{result['data']} / {result['task']}: {result['sizes']['test']} test items, "
             f"{result['tiers']['small']['name']} -> {result['tiers']['large']['name']}")
    by_calls.set(xlabel="share of items sent to the large tier", ylabel=quality_name, xlim=(0, 1), title=title)
    by_cost.set(xlabel=f"$ per 1,000 items (large tier: {result['tiers']['large']['price']['source']})",
                ylabel=quality_name, title="cost-quality (o: operating point at the cascade's rate)")
    for ax in (by_calls, by_cost):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    return fig


def write_plots(result: dict[str, Any], policies: Sequence[Sequence[PolicyResult]], t: TierOutcomes,
                quality_name: str, cascade_conf: np.ndarray, p_yes: np.ndarray, plot_dir: Path) -> list[str]:
    """Write cost-quality.png and the reliability diagrams of the cascade's calibrated confidence
    and of self-verification's P(yes), both against the small answer's correctness."""
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plot_dir / "cost-quality.png"
    _policy_figure(result, policies, quality_name).savefig(path, format="png", dpi=120, bbox_inches="tight")
    name = f"{result['data']} / {result['task']}"
    written = [path,
               plot_reliability(np.clip(cascade_conf, 0, 1), t.small_correct, plot_dir / "reliability-cascade.png",
                                title=f"{name}: calibrated cascade ({result['calibration']['method']})"),
               plot_reliability(np.clip(p_yes, 0, 1), t.small_correct, plot_dir / "reliability-self-verification.png",
                                title=f"{name}: self-verification P(yes)")]
    return [str(p) for p in written]
