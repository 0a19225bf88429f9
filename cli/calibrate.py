"""`cascade calibrate`: fit a calibration artifact for a tier's model (the first by default) on labelled data.

Registered in cli/main.py with `app.command("calibrate")(calibrate)`. The work is done by
`orchestrator.calibration.run.run_calibration`; this module only parses options and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from agents.errors import CascadeError, InvalidInputError, UserError

__all__ = ["calibrate"]

out = Console()
err = Console(stderr=True)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _table(result: dict[str, Any]) -> Table:
    artifact, report = result["artifact"], result["report"]
    fit = artifact.fit_metrics
    table = Table("figure", "fit split", "test split", title=f"calibration artifact {artifact.id} ({artifact.method})")
    table.add_row("items", _fmt(fit["n"]), _fmt(report.n))
    for key, name in [("accuracy_raw", "accuracy, raw argmax"), ("accuracy", "accuracy, calibrated (debiased or vector-scaled)"),
                      ("ece_raw", "ECE before (raw top prob)"), ("ece", "ECE after"),
                      ("brier_raw", "Brier before"), ("brier", "Brier after"),
                      ("auroc_raw", "AUROC before"), ("auroc", "AUROC after (confidence vs correct)")]:
        table.add_row(name, _fmt(fit[key]), _fmt(getattr(report, key)))
    table.add_row("coverage (kept share)", "", _fmt(report.coverage))
    table.add_row("accuracy of kept answers", "", _fmt(report.kept_accuracy))
    if report.target_accuracy is not None:
        table.add_row(f"target accuracy {report.target_accuracy:g} held", "", _fmt(report.guarantee_held))
    return table


def calibrate(
    data: Annotated[str, typer.Option(help="banking77, sms, smishing, or a JSONL file of {\"text\", \"label\"} rows")],
    task: Annotated[str, typer.Option(help="the task the artifact is for: classify, or fraud (sms/smishing "
                                      "spam/ham read as fraud/legit)")] = "classify",
    target_accuracy: Annotated[Optional[float], typer.Option(help="keep answers only while their accuracy is "
                               "guaranteed >= this (learn-then-test, Clopper-Pearson)")] = None,
    delta: Annotated[float, typer.Option(help="failure probability of the accuracy guarantee")] = 0.1,
    target_escalation_rate: Annotated[Optional[float], typer.Option(help="escalate about this share (no guarantee)")] = None,
    max_escalation_share: Annotated[Optional[float], typer.Option(help="escalate at most this share")] = None,
    per_class: Annotated[bool, typer.Option(help="one accuracy threshold per predicted label")] = False,
    min_per_class: Annotated[int, typer.Option(min=1, help="with --per-class: a label predicted fewer times on the "
                                               "fit split takes the global threshold")] = 100,
    tier: Annotated[int, typer.Option(min=1, help="the ladder's tier to calibrate (1: the first)")] = 1,
    on_escalated: Annotated[bool, typer.Option(help="fit and check a later tier only on the items the tiers before "
                                               "it escalate, by their newest artifacts")] = False,
    method: Annotated[str, typer.Option(help="calibrator: auto (the lowest 5-fold Brier score on the fit split), vector "
                                             "(label-aware scale and bias per label), temperature, platt or isotonic")] = "auto",
    fit_size: Annotated[int, typer.Option(min=1, help="items to fit on")] = 600,
    test_size: Annotated[int, typer.Option(min=1, help="items to check on (disjoint from the fit items)")] = 600,
    seed: Annotated[int, typer.Option(help="seed of the stratified split")] = 0,
    labels: Annotated[Optional[str], typer.Option(help="JSONL data only: comma-separated label set in prompt order")] = None,
    demos: Annotated[int, typer.Option(min=0, help="retrieved demonstrations per prompt, as the cascade shows once "
                                       "the task's example store holds them (0: the zero-shot prompt)")] = 0,
    demo_pool: Annotated[int, typer.Option(min=1, help="labelled items, disjoint from fit and test, to retrieve "
                                           "demonstrations from")] = 1000,
    data_root: Annotated[Optional[Path], typer.Option(help="evaluation data root (else $CASCADE_EVAL_DATA, else ../shared/data)")] = None,
    report_dir: Annotated[Optional[Path], typer.Option(help="where to write the PNG plots and report.json")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="data directory (else config / $CASCADE_DATA_DIR)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for pipelines")] = False,
) -> None:
    """Fit a calibrated confidence and threshold for a tier's model on one split, check it on
    another, and save it as the next versioned artifact."""
    from evaluation.datasets import load_named
    from orchestrator.calibration.run import run_calibration
    from orchestrator.core.config import load_settings

    try:
        if sum(p is not None for p in (target_accuracy, target_escalation_rate, max_escalation_share)) != 1:
            raise InvalidInputError("give exactly one of --target-accuracy, --target-escalation-rate, "
                                    "--max-escalation-share")
        settings = load_settings(config, data_dir=str(data_dir) if data_dir else None)
        label_list = [l.strip() for l in labels.split(",")] if labels else None
        result = run_calibration(
            settings, task, data, fit_size=fit_size, test_size=test_size, seed=seed, method=method,
            target_accuracy=target_accuracy, delta=delta, target_escalation_rate=target_escalation_rate,
            max_escalation_share=max_escalation_share, per_class=per_class, labels=label_list,
            data_root=data_root, demos=demos, demo_pool=demo_pool, report_dir=report_dir, tier_index=tier - 1,
            on_escalated=on_escalated, min_per_class=min_per_class, progress=not as_json, load=load_named)
    except CascadeError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2 if isinstance(exc, UserError) else 1)
    artifact = result["artifact"]
    if as_json:
        out.print_json(json.dumps({"artifact": artifact.id, "version": artifact.version, "path": str(result["path"]),
                                   "report_dir": str(result["report_dir"]), "skipped": result["skipped"],
                                   "policy": artifact.policy, "threshold": artifact.threshold,
                                   "fit": artifact.fit_metrics, "test": result["report"].model_dump()}))
        return
    out.print(_table(result))
    out.print(f"policy: {artifact.policy}", highlight=False)
    out.print(f"artifact: {result['path']}\nplots: {result['report_dir']}", highlight=False)
    if result["skipped"]:
        out.print(f"{result['skipped']} item(s) skipped: longer than the model's context")
