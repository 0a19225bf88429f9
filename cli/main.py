"""The `cascade` command: a thin layer over the SDK. Tables for people, `--json` for pipelines."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agents.errors import CascadeError
from cli.common import ConfigOpt, JsonOpt, command_group, err, fail, out, results_table
from cli.audit import audit_app, review_app
from cli.batch import batch_app, bench_batch, worker
from cli.calibrate import calibrate
from cli.train import train
from cli.contract import bench_contract_spans, contract
from cli.demo import demo
from cli.docs import ask, docs_app
from cli.eval import bench_speed, eval_cmd
from cli.experiments import experiments_app
from cli.fraud import fraud
from cli.qa_bench import bench_qa_checks
from cli.serve import bench_serve, keys_app, serve
from cli.workflow import bench_workflows, workflow_app
from cli.train_reader import bench_reader_cmd, train_reader_cmd

app = command_group("Run tasks on a small local model first; escalate only when it must.")
models_app = command_group("Model tiers: serve the local ones.")
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")
app.add_typer(workflow_app, name="workflow")
examples_app = command_group("Labelled examples shown to the small model as demonstrations.")
app.add_typer(examples_app, name="examples")
bench_app = command_group("Benchmarks: the cascade's overhead, prefix reuse, speed, batches, spans, checks and redaction.")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(batch_app, name="batch")
app.command("worker")(worker)
app.command("serve")(serve)
app.add_typer(keys_app, name="keys")
bench_app.command("batch")(bench_batch)
bench_app.command("contract-spans")(bench_contract_spans)
bench_app.command("qa-checks")(bench_qa_checks)
bench_app.command("serve")(bench_serve)
bench_app.command("workflows")(bench_workflows)

app.command("calibrate")(calibrate)
app.command("train")(train)
app.command("fraud")(fraud)
app.command("contract")(contract)
app.add_typer(docs_app, name="docs")
app.command("ask")(ask)
app.add_typer(experiments_app, name="experiment")
app.command("eval")(eval_cmd)
bench_app.command("speed")(bench_speed)
app.command("train-reader")(train_reader_cmd)
app.command("demo")(demo)
bench_app.command("reader")(bench_reader_cmd)



def _cascade(config: Path | None):
    from orchestrator import Cascade

    return Cascade.from_config(config)


@app.command()
def classify(
    text: Annotated[str, typer.Argument(help="the text to classify")],
    label: Annotated[list[str], typer.Option("--label", "-l", help="an allowed label; repeat for each")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify TEXT into one of the given labels."""
    try:
        with _cascade(config) as cascade:
            result = cascade.classify(text, labels=label)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        out.print(results_table([(text, result)]))
        out.print(f"audit run: {result.run_id}")


@models_app.command("serve")
def models_serve(
    tier: Annotated[Optional[list[str]], typer.Argument(help="tier names (default: every tier with serve:)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Start the local OpenAI-compatible server of each servable tier and keep it running."""
    from orchestrator import load_settings
    from orchestrator.core.models import stop_server
    from orchestrator.core.serving import servable_tiers, server_log, start_tier_server

    try:
        settings = load_settings(config)
        tiers = servable_tiers(settings, tier)
        if not tiers:
            err.print("no tier has a serve: section; nothing to start")
            raise typer.Exit(2)
        processes = []
        for t in tiers:
            processes.append(start_tier_server(settings, t))
            out.print(f"serving tier {t.name} at {t.api_base} (log: {server_log(settings, t)})")
    except CascadeError as exc:
        fail(exc)
    out.print("press Ctrl-C to stop")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for p in processes:
            p.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for p in processes:
            stop_server(p)


TaskOpt = Annotated[str, typer.Option("--task", "-t", help="task the examples are for")]


@examples_app.command("add")
def examples_add(file: Annotated[Path, typer.Argument(help="JSONL or CSV with text and label")], task: TaskOpt = "classify",
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Seed the example store from a labelled file (near-duplicates are stored once)."""
    from orchestrator.core.example_files import read_examples

    try:
        examples = read_examples(file)
        with _cascade(config) as cascade:
            added = cascade.examples.add(task, examples)
            total = cascade.examples.count(task)
    except CascadeError as exc:
        fail(exc)
    summary = {"read": len(examples), "added": len(added), "near_duplicates": len(examples) - len(added), "total": total}
    out.print_json(json.dumps(summary)) if as_json else out.print(
        f"added {len(added)} of {len(examples)} examples ({len(examples) - len(added)} near-duplicates); {total} stored for {task}")


@examples_app.command("list")
def examples_list(task: TaskOpt = "classify", limit: Annotated[int, typer.Option(help="how many")] = 50,
                  config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List stored examples with their provenance."""
    try:
        with _cascade(config) as cascade:
            examples = cascade.examples.list(task, limit=limit)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([e.model_dump() for e in examples]))
        return
    table = Table("id", "label", "text", "source", "audit run")
    for e in examples:
        table.add_row(e.id, e.label, e.text[:60], e.source, e.audit_id or "-")
    out.print(table)


@examples_app.command("remove")
def examples_remove(ids: Annotated[list[str], typer.Argument(help="example ids")], task: TaskOpt = "classify",
                    config: ConfigOpt = None) -> None:
    """Remove examples by id."""
    try:
        with _cascade(config) as cascade:
            removed = cascade.examples.remove(task, ids)
    except CascadeError as exc:
        fail(exc)
    if removed < len(ids):
        err.print(f"removed {removed}; {len(ids) - removed} id(s) were not in the store")
        raise typer.Exit(1)
    out.print(f"removed {removed}")


@bench_app.command("overhead")
def bench_overhead(items: Annotated[int, typer.Option(help="items to time (at least 200 for the record)")] = 200,
                   config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Per-item overhead of the cascade over the bare llama-cpp-python scoring call."""
    from evaluation.benchmarks.overhead import overhead

    with out.status(f"timing {items} items twice..."):
        result = overhead(items, config=config)
    _print_bench(result, as_json)


@bench_app.command("prefix")
def bench_prefix(items: Annotated[int, typer.Option(help="items per length class")] = 100,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Tier-1 per-item time with and without reuse of the evaluated prompt prefix."""
    from evaluation.benchmarks.overhead import prefix_reuse

    with out.status(f"timing {items} short and {items} long items, with and without prefix reuse..."):
        result = prefix_reuse(items, config=config)
    _print_bench(result, as_json)


def _print_bench(result: dict, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table("measure", "value")
    for key, value in result.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    out.print(table)


@bench_app.command("redaction")
def bench_redaction(n: Annotated[int, typer.Option("--n", help="synthetic labelled texts")] = 500,
                    seed: Annotated[int, typer.Option(help="seed of the generated texts")] = 0,
                    as_json: JsonOpt = False) -> None:
    """Recall of personal-data redaction per entity type on synthetic Faker texts (six locales)."""
    from evaluation.benchmarks.redaction import run_redaction_bench

    with out.status(f"redacting {n} synthetic texts (seed {seed})..."):
        result = run_redaction_bench(n, seed)
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table("entity type", "labelled", "recalled", "partial", "recall",
                  title=f"redaction recall, {n} texts, seed {seed}, Faker {result['faker_version']}")
    for etype, row in result["entities"].items():
        table.add_row(etype, str(row["n"]), str(row["recalled"]), str(row["partial"]),
                      "-" if row["recall"] is None else f"{row['recall']:.3f}")
    out.print(table)
    out.print(f"false positives per 100 texts: {result['false_positives_per_100_texts']} "
              f"{result['false_positives_by_type']}; median {result['median_ms_per_text']} ms per text")


if __name__ == "__main__":
    app()
