"""`cascade workflow list | run NAME INPUT | status ID | resume ID`, and the tree `cascade audit
show` prints for a workflow run. A thin layer over `orchestrator.Workflows`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.tree import Tree

from agents.errors import CascadeError, InvalidInputError
from cli.common import ConfigOpt, JsonOpt, WorkflowOptionsOpt, command_group, err, fail, out, workflow_options

workflow_app = command_group("Multi-step workflows whose steps run through the cascade.")


@workflow_app.command("list")
def workflow_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The registered workflows."""
    rows = _with_workflows(config, lambda workflows: workflows.list())
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("workflow", "what it does", "options (-o key=value)")
    for r in rows:
        table.add_row(r["name"], r["description"], r["options"])
    out.print(table)


@workflow_app.command("run")
def workflow_run(
    name: Annotated[str, typer.Argument(help="the workflow (see `cascade workflow list`)")],
    text: Annotated[Optional[str], typer.Argument(help="the input text; '-' reads it from stdin")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="read the input from this file (UTF-8)")] = None,
    option: WorkflowOptionsOpt = [],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run workflow NAME on TEXT (or --file) until it completes, pauses for a person or fails."""
    try:
        source, options = _read_input(text, file), workflow_options(option)
    except CascadeError as exc:
        fail(exc)
    _print_run(_with_workflows(config, lambda workflows: workflows.run(name, source, **options)), as_json)


@workflow_app.command("status")
def workflow_status(run_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """A workflow run's status, the reviews it waits on, its steps and its output."""
    _print_run(_with_workflows(config, lambda workflows: workflows.status(run_id)), as_json, exit_on_failure=False)


@workflow_app.command("resume")
def workflow_resume(run_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Continue a workflow run from its last checkpoint: after a crash, a failure or new review answers."""
    _print_run(_with_workflows(config, lambda workflows: workflows.resume(run_id)), as_json)


def bench_workflows(
    contracts: Annotated[int, typer.Option(help="CUAD contracts to review")] = 3,
    category: Annotated[Optional[list[str]], typer.Option(help="clause categories (repeat); default: four")] = None,
    banking: Annotated[int, typer.Option(help="banking77 test messages (legit, with a gold intent)")] = 8,
    spam: Annotated[int, typer.Option(help="SMS spam messages (gold verdict fraud)")] = 4,
    config: ConfigOpt = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="also write the JSON here")] = None,
) -> None:
    """Both shipped workflows on CUAD and on support messages from banking77 and SMS spam: outcomes,
    seconds per case and per step, and which tier (or the simulated reviewer) decided each step."""
    from evaluation.benchmarks.workflows import workflows_bench

    categories = category or ["Governing Law", "Cap on Liability", "Termination for Convenience", "Change of Control"]
    try:
        result = workflows_bench(contracts, categories, banking, spam, config,
                                 progress=lambda line: err.print(line, highlight=False))
    except CascadeError as exc:
        fail(exc)
    text = json.dumps(result, indent=2)
    if out_file:
        out_file.write_text(text + "\n")
    out.print_json(text)


def print_workflow_tree(store, run: dict[str, Any]) -> None:
    """A workflow run as a tree: its steps in order, each with its child run, pauses and resumes."""
    children = {c["id"]: c for c in store.child_runs(run["id"])}
    tree = Tree(f"[bold]workflow {run['params'].get('workflow')}[/] {run['id']}: {run['status']} "
                f"({run['answer'] or '-'}); {run['reason']}")
    for e in store.workflow_events(run["id"]):
        child = children.get(e["child_run_id"] or "")
        label = f"{e['seq']:>2} {e['step']} [italic]{e['kind']}[/]"
        if e["kind"] == "resume":
            label += f": {e['detail'].get('answer')!r} by {e['reviewer']}"
        elif e["kind"] == "pause":
            label += f": waiting for review of run {e['child_run_id']}"
        elif e["kind"] == "fail":
            label += f": {e['detail'].get('error_type')}: {e['detail'].get('error')}"
        elif e["kind"] == "step" and e["detail"].get("outcome"):
            label += f": {e['detail']['outcome']}"
        elif e["kind"] == "finish":
            label += f": {', '.join(sorted(e['detail']))[:120]}"
        node = tree.add(label)
        if child is not None and e["kind"] in ("step", "fail"):
            branch = node.add(f"run {child['id']} {child['task']}: {child['status']}, answer "
                              f"{(child['answer'] or '-')[:80]!r}, tier {child['final_tier'] or '-'}")
            for a in child["attempts"]:
                conf = f"{a['confidence']:.3f}" if a["confidence"] is not None else "-"
                branch.add(f"{a['tier_name']}: {a['decision']} {(a['answer'] or '-')[:60]!r} ({conf}) {a['reason']}")
    out.print(tree, highlight=False)


def _with_workflows(config: Path | None, call):
    """`call(workflows)` on the configured Cascade; a CascadeError ends the command."""
    from orchestrator import Cascade, Workflows

    try:
        with Cascade.from_config(config) as cascade, Workflows(cascade) as workflows:
            return call(workflows)
    except CascadeError as exc:
        fail(exc)


def _print_run(run, as_json: bool, exit_on_failure: bool = True) -> None:
    if as_json:
        out.print_json(json.dumps(run.model_dump(mode="json")))
    else:
        out.print(f"[bold]{run.workflow}[/] run {run.run_id}: {run.status}", highlight=False)
        for w in run.waiting:
            out.print(f"  waiting at {w['step']} for review run {w['review_run_id']} ({w['reason']}): "
                      f"`cascade review resolve {w['review_run_id']} --answer ... --reviewer NAME` resumes it",
                      highlight=False)
        if run.error:
            out.print(f"  failed at {run.error}", highlight=False)
        if run.output is not None:
            out.print_json(json.dumps(run.output))
    if run.status == "failed" and exit_on_failure:
        raise typer.Exit(1)


def _read_input(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        raise InvalidInputError("give the input as an argument, '-' for stdin, or --file PATH (one of them)")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"cannot read {file}: {exc}") from None
    return sys.stdin.read() if text == "-" else text


__all__ = ["bench_workflows", "print_workflow_tree", "workflow_app"]
