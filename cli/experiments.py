"""`cascade experiment demos|stream`: retrieved demonstrations, and learning from escalations over a stream.

Registered in cli/main.py with `app.add_typer(experiments_app, name="experiment")`. The work is done
by `evaluation.experiments.demonstrations` (usable from Python); this module parses options, shows progress,
prints tables and saves JSON/PNG.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agents.errors import CascadeError, UserError
from cli.common import command_group

__all__ = ["experiments_app"]

experiments_app = command_group("Experiments: retrieved demonstrations, and learning from escalations over a stream.")
out = Console()
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for pipelines")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="also save the full result as JSON here")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="llama.cpp threads (default: all cores)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of the splits and the fixed demonstrations")]
DataRootOpt = Annotated[Optional[Path], typer.Option("--data-root", help="evaluation data root (else $CASCADE_EVAL_DATA, else ../shared/data)")]


def _progress():
    """A callback printing progress: a line every 25 items (logs and nohup read well)."""
    def report(stage: str, done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            print(f"[{stage}] {done}/{total}", file=sys.stderr, flush=True)
    return report


def _fail(exc: CascadeError) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(2 if isinstance(exc, UserError) else 1)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _save(result: dict, path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))


@experiments_app.command("demos")
def demos(data: Annotated[str, typer.Option("--data", help="sms or banking77")] = "sms",
          n_fit: Annotated[int, typer.Option("--n-fit", help="fit split: store seed and encoder head")] = 1000,
          n_test: Annotated[int, typer.Option("--n-test", help="test split, disjoint from the fit split")] = 300,
          k: Annotated[int, typer.Option("--k", help="demonstrations per prompt")] = 4,
          seed: SeedOpt = 0, threads: ThreadsOpt = None, data_root: DataRootOpt = None,
          out_file: OutOpt = None, as_json: JsonOpt = False) -> None:
    """Tier-1 accuracy, AUROC and ms/item with no, fixed and retrieved demonstrations, and the encoder tier."""
    from evaluation.experiments.demonstrations import run_demos

    try:
        result = run_demos(data, n_fit=n_fit, n_test=n_test, k=k, seed=seed, threads=threads, root=data_root,
                           progress=_progress())
    except CascadeError as exc:
        _fail(exc)
    _save(result, out_file)
    if as_json:
        out.print_json(json.dumps(result))
        return
    auroc_name = "AUROC P(spam)" if data == "sms" else "AUROC conf/correct"
    table = Table("condition", "n", "accuracy", auroc_name, "AUROC conf/correct", "ms/item (median)", "of which retrieval",
                  title=f"{data}: fit {result['n_fit']}, test {result['n_test']}, k={k}, {result['model']}")
    for row in result["rows"]:
        table.add_row(row["condition"], str(row["n"]), _fmt(row["accuracy"]), _fmt(row["auroc"]),
                      _fmt(row["auroc_correct"]), f"{row['ms_median']:.1f}", f"{row['retrieval_ms_median']:.1f}")
    out.print(table)


@experiments_app.command("stream")
def stream(data: Annotated[str, typer.Option("--data", help="only sms for now")] = "sms",
           n: Annotated[int, typer.Option("--n", help="items in the stream, in file order")] = 2000,
           window: Annotated[int, typer.Option("--window", help="items per reported window")] = 200,
           resolver: Annotated[str, typer.Option("--resolver", help="tier: tier 2 answers escalations; reviewer: an ORACLE returns the gold label")] = "tier",
           threshold: Annotated[float, typer.Option("--threshold", help="tier-1 confidence threshold (no calibration artifact in the temp dir)")] = 0.9,
           k: Annotated[int, typer.Option("--k", help="retrieved demonstrations per prompt")] = 4,
           n_seed: Annotated[int, typer.Option("--n-seed", help="labelled examples in the store at the start")] = 20,
           learn_min_confidence: Annotated[float, typer.Option("--learn-min-confidence")] = 0.9,
           budget_min: Annotated[Optional[float], typer.Option("--budget-min", help="stop after this many minutes (partial result, stated)")] = None,
           models_dir: Annotated[Optional[Path], typer.Option("--models-dir", help="data dir holding (or to hold) the assembled Gemma file and the cache of tier 1's calibration log-probs")] = None,
           plot: Annotated[Optional[Path], typer.Option("--plot", help="write the per-window PNG here")] = None,
           calibrate: Annotated[Optional[str], typer.Option("--calibrate", help="FIT,TEST,POOL: first fit tier 1's "
                                "calibration artifact on FIT messages outside the seed and the stream (demonstrations "
                                "from POOL others, checked on TEST more); it replaces --threshold")] = None,
           target_accuracy: Annotated[float, typer.Option("--target-accuracy", help="with --calibrate: the "
                                      "accuracy the kept answers are guaranteed")] = 0.95,
           vote_weight: Annotated[float, typer.Option("--vote-weight", min=0.0, max=0.99, help="share of the label "
                                  "probabilities taken from the retrieved examples' similarity-weighted vote")] = 0.0,
           teacher_calibrate: Annotated[Optional[str], typer.Option("--teacher-calibrate", help="FIT,TEST,POOL: with "
                                        "--calibrate and --resolver tier, fit tier 2's artifact per label on the "
                                        "messages tier 1 escalates among FIT further ones (demonstrations from POOL "
                                        "others, checked among TEST more) and learn only its answers that reach "
                                        "their label's threshold")] = None,
           seed: SeedOpt = 0, threads: ThreadsOpt = None, data_root: DataRootOpt = None,
           out_file: OutOpt = None, as_json: JsonOpt = False) -> None:
    """Items in order through the cascade with learning on; per window: escalation rate and kept-answer accuracy."""
    from orchestrator import load_settings
    from evaluation.experiments.stream import plot_stream, run_stream

    if data != "sms":
        _fail(UserError(f"the stream experiment runs on --data sms only, not {data!r}"))
    try:
        sizes = _calibration_sizes(calibrate) if calibrate else None
        teacher_sizes = _calibration_sizes(teacher_calibrate, "--teacher-calibrate") if teacher_calibrate else None
        if teacher_sizes and (sizes is None or resolver != "tier"):
            raise UserError("--teacher-calibrate needs --calibrate and --resolver tier")
        models = models_dir or load_settings().data_dir
        result = run_stream(n=n, window=window, resolver=resolver, threshold=threshold, k=k, n_seed=n_seed,
                            learn_min_confidence=learn_min_confidence, seed=seed, threads=threads, root=data_root,
                            models_dir=models, budget_min=budget_min, calibration=sizes,
                            target_accuracy=target_accuracy, vote_weight=vote_weight,
                            teacher_calibration=teacher_sizes, progress=_progress())
    except CascadeError as exc:
        _fail(exc)
    _save(result, out_file)
    rule = (f"calibrated to {target_accuracy:g} ({result['calibration']['artifact']})" if result["calibration"]
            else f"threshold {threshold}") + (f", vote weight {vote_weight:g}" if vote_weight else "")
    if plot is not None:
        plot_stream({resolver: result["windows"]}, plot,
                    title=f"SMS stream, resolver={resolver}, {rule}, k={k} ({result['n_done']} items)")
    if as_json:
        out.print_json(json.dumps({k_: v for k_, v in result.items() if k_ != "records"}))
        return
    note = " [stopped by --budget-min]" if result["stopped_by_budget"] else ""
    table = Table("window", "items", "escalation rate", "kept acc. (tier 1)", "escalated acc.", "overall acc.",
                  "learned", "store size", "ms/item", title=f"SMS stream, resolver={resolver}, {rule}: "
                  f"{result['n_done']} of {n} items in {result['minutes']:.1f} min{note}")
    for w in result["windows"]:
        table.add_row(str(w["window"]) + ("*" if w["partial"] else ""), w["items"], _fmt(w["escalation_rate"]),
                      _fmt(w["kept_accuracy"]), _fmt(w["escalated_accuracy"]), _fmt(w["overall_accuracy"]),
                      str(w["learned"]), str(w["store_size"]), f"{w['ms_median']:.0f}")
    out.print(table)


def _calibration_sizes(value: str, option: str = "--calibrate") -> tuple[int, int, int]:
    parts = value.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"{option} takes three positive counts FIT,TEST,POOL (e.g. 300,200,1000), got {value!r}")
    fit, test, pool = (int(p) for p in parts)
    return fit, test, pool


if __name__ == "__main__":  # `python -m cli.experiments ...` before the sub-app is registered
    experiments_app()
