"""`cascade eval`: compare escalation policies on one labelled data set, each tier run once per item.

Registered in cli/main.py with `app.command("eval")(eval_cmd)` and `bench_app.command("speed")(bench_speed)`.
The work is done by `evaluation.run.run_eval` and `evaluation.benchmarks.speed.speed_bench` (usable from
Python); this module parses options and prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agents.errors import CascadeError, InvalidInputError
from cli.common import ConfigOpt, JsonOpt, fail, out

__all__ = ["bench_speed", "eval_cmd"]

_COLUMNS = [("quality", "quality"), ("escalation_rate", "escalated"), ("cost_per_item", "$/1k items"),
            ("latency_p50_ms", "p50 ms"), ("latency_p95_ms", "p95 ms"), ("apgr", "APGR"), ("calls_50", "calls@50%"),
            ("calls_80", "calls@80%"), ("aiq", "AIQ"), ("auroc", "AUROC"), ("ece", "ECE"),
            ("silent_failure_rate", "silent fail")]


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "cost_per_item":
        return f"{value * 1000:.4f}"
    if key.startswith("latency"):
        return f"{value:.0f}"
    return f"{value:.3f}"


def _progress(stage: str, done: int, total: int) -> None:
    if done == total or done % 25 == 0:
        print(f"[{stage}] {done}/{total}", file=sys.stderr, flush=True)


def eval_cmd(
    task: Annotated[str, typer.Option("--task", "-t", help="classify, fraud, ask (document QA) or contract (contract review)")],
    data: Annotated[str, typer.Option("--data", help="sms, smishing, banking77 (classify only), halueval (ask only), cuad (contract only), or a JSONL file")],
    n: Annotated[int, typer.Option("--n", min=1, help="test items every policy is measured on")] = 300,
    fit_size: Annotated[int, typer.Option("--fit-size", min=30, help="items the calibrator and the prompt-only "
                                          "router learn from (disjoint from the test items)")] = 300,
    demos: Annotated[int, typer.Option("--demos", min=0, help="retrieved demonstrations per prompt (0: zero-shot)")] = 4,
    demo_pool: Annotated[int, typer.Option("--demo-pool", min=1, help="labelled items, disjoint from fit and test, "
                                           "to retrieve demonstrations from")] = 1000,
    target_accuracy: Annotated[float, typer.Option("--target-accuracy", help="the calibrated cascade keeps answers "
                                                   "while their accuracy is guaranteed >= this")] = 0.95,
    delta: Annotated[float, typer.Option("--delta", help="failure probability of that guarantee")] = 0.1,
    knn: Annotated[int, typer.Option("--knn", min=1, help="neighbours of the prompt-only router")] = 10,
    price_small: Annotated[str, typer.Option("--price-small", help="tier-1 price per 1k tokens, or a model name "
                                             "in litellm's price map")] = "0",
    price_large: Annotated[str, typer.Option("--price-large", help="tier-2 price per 1k tokens, or a model name "
                                             "in litellm's price map")] = "gpt-4o-mini",
    seed: Annotated[int, typer.Option("--seed", help="seed of the splits and the random policy")] = 0,
    threads: Annotated[int, typer.Option("--threads", min=1, help="threads for each model")] = 1,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="evaluation data root (else "
                                                      "$CASCADE_EVAL_DATA, else ../shared/data)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="data directory: model files and the "
                                                     "replay cache (else config / $CASCADE_DATA_DIR)")] = None,
    plot_dir: Annotated[Path | None, typer.Option("--plot-dir", help="write cost-quality.png and the "
                                                     "reliability diagrams here")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="also save the full result (curves "
                                                     "included) as JSON here")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare always-small, always-large, random at equal rate, the oracle, the calibrated cascade,
    a prompt-only kNN router and self-verification on the same cached tier outputs.

    Each tier (SmolLM2, then Gemma-3-270M, both in-process) runs once per item; its outputs are cached
    in the data directory, so a re-run replays them without a model call.

    JSONL data holds one object per line. classify: {"text": "...", "label": "..."} (the label set is
    the distinct labels, sorted). fraud: {"text": "...", "label": "fraud" or "legit"} (spam and ham
    are read as fraud and legit). ask: {"knowledge": "...", "question": "...", "right_answer": "..."}
    (HaluEval QA's format). contract: {"contract": "the full text", "category": "Governing Law", "present":
    true} (a category contract review knows; rows with the same text are one contract); with --data
    cuad the items are CUAD contracts x Governing Law, Cap on Liability, Termination for Convenience and
    Non-Compete, --n and --fit-size count (contract, category) pairs, split by contract, and quality is
    presence accuracy (a present answer whose clause fails the span check is wrong). For ask and
    contract, --demos and --demo-pool do not apply.
    """
    from orchestrator.core.config import load_settings
    from evaluation.ladder import price_of
    from evaluation.run import run_eval

    try:
        settings = load_settings(config, data_dir=str(data_dir) if data_dir else None)
        result = run_eval(task, data, n=n, fit_size=fit_size, data_dir=settings.data_dir, demos=demos,
                          demo_pool=demo_pool, seed=seed, target_accuracy=target_accuracy, delta=delta, knn=knn,
                          price_small=price_of(price_small), price_large=price_of(price_large), threads=threads,
                          root=data_root, progress=_progress, plot_dir=plot_dir)
    except CascadeError as exc:
        fail(exc)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(result, indent=1))
    if as_json:
        out.print_json(json.dumps({k: v for k, v in result.items() if k != "curves"}))
        return
    sizes, tiers = result["sizes"], result["tiers"]
    table = Table("policy", *(name for _, name in _COLUMNS),
                  title=f"{data} / {task}: {sizes['test']} test items, fit {sizes['fit']}, {result['quality_metric']}")
    for row in result["policies"]:
        table.add_row(row["policy"], *(_fmt(key, row[key]) for key, _ in _COLUMNS))
    if not out.is_terminal:  # redirected output keeps every column
        out.width = 200
    out.print(table)
    cal = result["calibration"]
    out.print(f"small {tiers['small']['name']} {tiers['small']['quality']:.3f}, large {tiers['large']['name']} "
              f"{tiers['large']['quality']:.3f} (debiased: {tiers['large']['calibrator']}); calibrator {cal['method']}, target accuracy {cal['target_accuracy']} "
              f"-> {cal['escalated']} escalated; large tier priced by {tiers['large']['price']['source']}; "
              f"model calls {result['model_calls']}; {result['seconds']:.0f} s", highlight=False)
    for path in result.get("plots", []):
        out.print(f"plot: {path}", highlight=False)


def bench_speed(
    lengths: Annotated[str, typer.Option("--lengths", help="comma-separated context lengths in tokens")] = "200,400,600,800,1000",
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=2, help="tokens decoded per run")] = 32,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="runs per length (medians are reported)")] = 3,
    threads: Annotated[int, typer.Option("--threads", min=1, help="threads for each model")] = 1,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="data directory holding the model files")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """SLM speed per local tier (SlimLM style): input and output tokens/s, time to first token and total
    time at each context length. Timings on a shared machine are noisy: read them as ratios."""
    from orchestrator.core.config import load_settings
    from evaluation.benchmarks.speed import speed_bench

    try:
        sizes = tuple(int(x) for x in lengths.split(","))
        settings = load_settings(config, data_dir=str(data_dir) if data_dir else None)
        result = speed_bench(settings.data_dir, sizes, output_tokens, repeats, threads)
    except ValueError as exc:
        fail(InvalidInputError(f"--lengths must be comma-separated token counts within the sample text: {exc}"))
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table("tier", "context", "input tok/s", "output tok/s", "TTFT s", "total s",
                  title=f"speed, {threads} thread(s), median of {repeats}, {output_tokens} output tokens")
    for r in result["rows"]:
        table.add_row(r["tier"], str(r["context"]), f"{r['input_tps']:.0f}", f"{r['output_tps']:.1f}",
                      f"{r['ttft_s']:.3f}", f"{r['total_s']:.3f}")
    out.print(table)
