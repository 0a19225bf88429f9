"""`cascade batch ...` and `cascade worker`: a thin layer over orchestrator.jobs.runner and workers/."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.errors import CascadeError
from cli.common import ConfigOpt, JsonOpt, WorkflowOptionsOpt, command_group, err, fail, out, workflow_options

batch_app = command_group("Batch jobs: a JSONL or CSV file of items, tier 1 over all, then the escalations.")

WaitOpt = Annotated[bool, typer.Option("--wait", help="show a progress bar until the job is finished")]


class Mode(str, Enum):
    embedded = "embedded"
    distributed = "distributed"


class Fmt(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


def _jobs(config: Path | None):
    from orchestrator import Jobs

    return Jobs.from_config(config)


@batch_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV, one item per row (classify: id?, text, labels; fraud, workflow: id?, text)")],
    task: Annotated[str, typer.Option("--task", "-t", help="task family of every row: classify, fraud or workflow")],
    label: Annotated[Optional[list[str]], typer.Option("--label", "-l", help="classify: a label for rows without their own; repeat")] = None,
    workflow: Annotated[Optional[str], typer.Option("--workflow", "-w", help="--task workflow: the registered workflow each row runs (see `cascade workflow list`)")] = None,
    option: WorkflowOptionsOpt = [],
    max_escalation_share: Annotated[Optional[float], typer.Option(help="share of the items that may go past tier 1 (0-1); the rest end over_budget; not for workflow jobs")] = None,
    max_spend: Annotated[Optional[float], typer.Option(help="cap on the estimated cost of the escalations (the next tier's prices); the rest end over_budget; not for workflow jobs")] = None,
    mode: Annotated[Optional[Mode], typer.Option(help="embedded: run here; distributed: on `cascade worker` processes (default: CASCADE_BATCH_MODE)")] = None,
    input_format: Annotated[Optional[Fmt], typer.Option("--format", help="input format (default: from the file name)")] = None,
    wait: WaitOpt = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit FILE as a batch job and print its id. Embedded jobs run in this process.

    With `--task workflow --workflow NAME [-o key=value ...]` each row's text runs the whole workflow
    (its steps escalate inside their own runs, so the escalation budget does not apply): an item ends
    accepted with the workflow's answer, needs_review while it waits for reviews, or failed."""
    try:
        with _jobs(config) as jobs:
            job_id = jobs.submit(file, task, labels=label, max_escalation_share=max_escalation_share,
                                 max_spend=max_spend, mode=mode.value if mode else None,
                                 input_format=input_format.value if input_format else None,
                                 workflow=workflow, options=workflow_options(option))
            job = jobs.status(job_id)
            if not as_json:
                out.print(f"job {job_id}: {job['total']} rows ({job['invalid']} invalid), {job['mode']}")
            if job["mode"] == "embedded":
                summary = _with_progress(job, wait and not as_json, lambda cb: jobs.run(job_id, on_progress=cb))
            elif wait:
                summary = _with_progress(job, not as_json, lambda cb: jobs.wait(job_id, on_progress=cb))
            else:
                summary = job
    except CascadeError as exc:
        fail(exc)
    _print_summary(summary, as_json)


@batch_app.command("status")
def status(job_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """A job's summary: counts, escalation rate, cost, spend (estimated and actual), latency p50/p95."""
    try:
        with _jobs(config) as jobs:
            summary = jobs.status(job_id)
    except CascadeError as exc:
        fail(exc)
    _print_summary(summary, as_json)


@batch_app.command("results")
def results(
    job_id: str,
    fmt: Annotated[Fmt, typer.Option("--format", help="jsonl or csv")] = Fmt.jsonl,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write to this file instead of stdout")] = None,
    config: ConfigOpt = None,
) -> None:
    """One result per input row, in row order (row, id, status, answer, confidence, tier, reason, run_id...)."""
    try:
        with _jobs(config) as jobs:
            if output is None:
                jobs.write_results(job_id, sys.stdout, fmt.value)
            else:
                with output.open("w", encoding="utf-8", newline="") as f:
                    n = jobs.write_results(job_id, f, fmt.value)
                err.print(f"{n} results written to {output}")
    except CascadeError as exc:
        fail(exc)


@batch_app.command("cancel")
def cancel(job_id: str, config: ConfigOpt = None) -> None:
    """Cancel a job: its unfinished items end cancelled."""
    try:
        with _jobs(config) as jobs:
            n = jobs.cancel(job_id)
    except CascadeError as exc:
        fail(exc)
    out.print(f"job {job_id} cancelled; {n} unfinished item(s) cancelled")


@batch_app.command("retry-failed")
def retry_failed(job_id: str, wait: WaitOpt = False, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Requeue a finished job's failed items (embedded jobs run them again here)."""
    try:
        with _jobs(config) as jobs:
            n = jobs.retry_failed(job_id)
            job = jobs.status(job_id)
            if not as_json:
                out.print(f"job {job_id}: {n} failed item(s) requeued")
            if n and job["mode"] == "embedded":
                job = _with_progress(job, wait and not as_json, lambda cb: jobs.run(job_id, on_progress=cb))
            elif n and wait:
                job = _with_progress(job, not as_json, lambda cb: jobs.wait(job_id, on_progress=cb))
    except CascadeError as exc:
        fail(exc)
    _print_summary(job, as_json)


@batch_app.command("resume")
def resume(job_id: str, wait: WaitOpt = False, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Continue an embedded job that was interrupted, in this process."""
    try:
        with _jobs(config) as jobs:
            job = jobs.status(job_id)
            if job["mode"] != "embedded":
                err.print(f"[bold red]error:[/] job {job_id} is distributed: workers resume it on their own")
                raise typer.Exit(2)
            job = _with_progress(job, wait and not as_json, lambda cb: jobs.run(job_id, on_progress=cb))
    except CascadeError as exc:
        fail(exc)
    _print_summary(job, as_json)


def worker(
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", "-n", help="worker processes, each loading the models once (default: one per core)")] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, or solo (one process)")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "info",
    config: ConfigOpt = None,
) -> None:
    """Start a Celery worker for distributed batch jobs, with the project's settings."""
    import os

    concurrency = concurrency or os.cpu_count() or 1
    if config is not None:
        os.environ["CASCADE_CONFIG"] = str(config)
    try:
        from workers.app import app as celery_app
    except CascadeError as exc:
        fail(exc)
    celery_app.worker_main(["worker", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}"])


def _with_progress(job: dict, show: bool, run):
    """Run `run(on_progress)`, drawing a bar with done / escalated / failed when `show`."""
    if not show:
        return run(None)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("escalated {task.fields[escalated]}  failed {task.fields[failed]}  "
                          "over budget {task.fields[over_budget]}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task(f"job {job['id'][:8]}", total=job["total"], escalated=0, failed=0, over_budget=0)

        def on_progress(p: dict) -> None:
            progress.update(bar, completed=p["finished"], total=p["total"], escalated=p["escalated"],
                            failed=p["failed"], over_budget=p["over_budget"])

        return run(on_progress)


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table("job", summary["id"], show_header=True)
    for key in ("status", "task", "mode", "total", "finished", "done", "escalated", "over_budget", "failed",
                "invalid", "cancelled", "queued", "pending", "escalating", "escalation_rate", "cost",
                "max_spend", "estimated_spend", "spend", "latency_ms_p50", "latency_ms_p95", "budget"):
        value = summary.get(key)
        if value is None:
            continue
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    out.print(table)


def bench_batch(
    items: Annotated[int, typer.Option(help="items of the timed job")] = 1000,
    processes: Annotated[Optional[list[int]], typer.Option("--processes", "-p", help="worker process counts to compare; repeat")] = None,
    threads: Annotated[int, typer.Option(help="llama.cpp threads per process (0: the worker divides the cores)")] = 1,
    ladder: Annotated[str, typer.Option(help="smollm2: SmolLM2 on a two-label classify job; encoder: the encoder tier's "
                                             "bundled head on a fraud job")] = "smollm2",
    plot: Annotated[Optional[Path], typer.Option(help="write a PNG of worker memory against items finished")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Items per second of a distributed classification job on 1 and 2 worker processes, and their RSS."""
    from evaluation.benchmarks.batch import LADDERS, plot_memory, throughput

    if ladder not in LADDERS:
        raise typer.BadParameter(f"unknown ladder {ladder!r}; choose from {', '.join(LADDERS)}", param_hint="--ladder")

    with err.status(f"timing a {items}-item job on {processes or [1, 2]} worker process(es)..."):
        result = throughput(items, tuple(processes or [1, 2]), threads or None, ladder)
    if plot is not None:
        err.print(f"memory plot: {plot_memory(result, plot)}")
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table("processes", "threads", "items", "elapsed s", "items/s", "p50 ms", "p95 ms", "pool RSS MB 10% -> end",
                  "peak RSS MB per process")
    for r in result["runs"]:
        table.add_row(str(r["processes"]), str(r["threads_per_process"]), str(r["items"]), str(r["elapsed_s"]),
                      str(r["items_per_s"]), f"{r['latency_ms_p50']:.0f}", f"{r['latency_ms_p95']:.0f}",
                      f"{r['pool_rss_mb_after_10pct']} -> {r['pool_rss_mb_at_end']}",
                      ", ".join(map(str, r["pool_peak_rss_mb_per_process"])))
    out.print(table)
    if "ratio" in result:
        out.print(f"throughput ratio: {result['ratio']}x")
