"""`cascade bench qa-checks`: how well the ask task's support check and confidences find wrong and
hallucinated answers (evaluation.benchmarks.qa_checks says what is measured and how)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from agents.errors import CascadeError
from cli.common import ConfigOpt, JsonOpt, err, fail, out

__all__ = ["bench_qa_checks"]


def bench_qa_checks(
    halueval: Annotated[int, typer.Option(help="HaluEval questions the small model answers, for (a)")] = 200,
    pubmedqa: Annotated[int, typer.Option(help="PubMedQA questions the small model answers, for (a)")] = 100,
    pairs: Annotated[int, typer.Option(help="HaluEval rows (right + hallucinated answer) for (b); half fit, half test")] = 500,
    seed: Annotated[int, typer.Option(help="seed of the row choice")] = 0,
    max_tokens: Annotated[int, typer.Option(help="tokens the small model may generate per answer (the ask task's default: 160)")] = 160,
    save_weights: Annotated[bool, typer.Option("--save-weights", help="save the fitted support weights as the shipped artifact (orchestrator/core/qa_support.yaml)")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the full result (with every answer) as JSON")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """AUROC of the support check, its signals and the confidences for the small model's own answers
    being right (a); balanced accuracy on HaluEval's right vs hallucinated answers next to two baselines (b)."""
    from evaluation.benchmarks.qa_checks import run

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True) as bar:
            def progress(description: str, total: int):
                job = bar.add_task(description, total=total)
                return lambda: bar.advance(job)

            result = run(halueval, pubmedqa, pairs, seed, config, save_weights, max_tokens, progress)
    except CascadeError as exc:
        fail(exc)
    if out_file is not None:
        out_file.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if as_json:
        out.print_json(json.dumps({**result, **{part: {k: v for k, v in result[part].items() if k != "answers"}
                                             for part in ("a", "b")}}))
        return
    _print(result)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _print(result: dict) -> None:
    a, b = result["a"], result["b"]
    table = Table("AUROC for right", *(f"{s} (n={a['metrics'][s]['n']}, right {a['metrics'][s]['right']})"
                                       for s in ("halueval", "pubmedqa", "all")),
                  title=f"(a) {result['model']}'s own answers (max {a['max_tokens']} tokens); outcomes {a['outcomes']}")
    for name, label in (("support", "support check score"), ("similarity", "  similarity"),
                        ("grounding", "  grounding"), ("judge", "  judge P(yes)"),
                        ("confidence", "answer-token confidence"), ("combined", "confidence x support")):
        table.add_row(label, *(_fmt(a["metrics"][s][name]) for s in ("halueval", "pubmedqa", "all")))
    out.print(table)
    table = Table("signal", "balanced accuracy", "AUROC", "threshold (fit)", "direction",
                  title=f"(b) HaluEval right vs hallucinated: {b['rows']} rows, fit {b['fit_answers']} / "
                        f"test {b['test_answers']} answers")
    for name, label in (("support", "support check"), ("similarity", "  similarity"), ("grounding", "  grounding"),
                        ("judge", "  judge P(yes)"), ("model_only", "similarity + judge (no lexical)"),
                        ("length", "baseline: answer length"), ("word_share", "baseline: words in knowledge")):
        m = b["metrics"][name]
        table.add_row(label, _fmt(m["balanced_accuracy"]), _fmt(m["auroc"]), _fmt(m["threshold"]), m["direction"])
    out.print(table)
    weights = result["support_model"]["with_judge"]
    out.print(f"support weights {dict(zip(weights['features'], (round(c, 3) for c in weights['coef'])))} "
              f"intercept {weights['intercept']:.3f}{' (saved)' if result['weights_saved'] else ''}; "
              f"{result['minutes']} min on {result['threads']} thread")
