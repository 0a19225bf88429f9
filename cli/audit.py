"""`cascade audit ...` (read, verify, export the audit log) and `cascade review ...` (the queue)."""

from __future__ import annotations

import json
import re
import sys
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agents.errors import CascadeError
from cli.common import ConfigOpt, JsonOpt, command_group, err, fail, out

audit_app = command_group("Read, verify and export the audit log.")
review_app = command_group("The human-review queue: runs no tier could answer confidently.")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20,
    task: Annotated[Optional[str], typer.Option(help="only this task")] = None,
    status: Annotated[Optional[str], typer.Option(help="only this status: accepted, needs_review, failed, pending, running (workflow runs: paused, completed)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs."""
    from orchestrator import AuditStore, load_settings

    try:
        store = AuditStore(load_settings(config).audit_url)
        runs = store.list_runs(limit=limit, task=task, status=status)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(runs))
        return
    table = Table("run", "started", "task", "status", "answer", "tier", "confidence", "reason")
    for r in runs:
        conf = f"{r['confidence']:.3f}" if r["confidence"] is not None else "-"
        table.add_row(r["id"], r["started_at"][:19], r["task"], r["status"], r["answer"] or "-",
                      r["final_tier"] or "-", conf, r["reason"])
    out.print(table)


@audit_app.command("show")
def audit_show(run_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show one run with every attempt; a workflow run as a tree of its steps and their runs."""
    from orchestrator import AuditStore, load_settings

    try:
        store = AuditStore(load_settings(config).audit_url)
        run = store.get_run(run_id)
    except CascadeError as exc:
        fail(exc)
    if run is not None and run["task"] == "workflow" and as_json:
        run = {**run, "events": store.workflow_events(run_id), "children": store.child_runs(run_id)}
    if run is None:
        err.print(f"[bold red]error:[/] no run with id {run_id}; list runs with `cascade audit list`")
        raise typer.Exit(2)
    if as_json:
        out.print_json(json.dumps(run))
        return
    if run["task"] == "workflow":
        from cli.workflow import print_workflow_tree

        print_workflow_tree(store, run)
        return
    for key, value in run.items():
        if key != "attempts":
            out.print(f"[bold]{key}[/]: {value}", highlight=False)
    table = Table("#", "tier", "model", "answer", "confidence", "decision", "reason", "tokens in/out", "ms", "cost")
    for a in run["attempts"]:
        conf = f"{a['confidence']:.3f}" if a["confidence"] is not None else "-"
        table.add_row(str(a["seq"]), a["tier_name"], a["model_id"], a["answer"] or "-", conf, a["decision"],
                      a["reason"], f"{a['tokens_in']}/{a['tokens_out']}", f"{a['latency_ms']:.0f}", f"{a['cost']:.6f}")
    out.print(table)


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check the tamper-evident ledger and every run against it; exit 1 at the first broken record."""
    from orchestrator import AuditStore, load_settings

    try:
        result = AuditStore(load_settings(config).audit_url).verify()
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(result))
    elif result["ok"]:
        out.print(f"OK: {result['entries_checked']} ledger entries and {result['runs_checked']} runs verified; "
                  f"head seq {result['head_seq']}, hash {result['head_hash']}", highlight=False)
    else:
        b = result["broken"]
        where = ", ".join(f"{k} {b[k]}" for k in ("run_id", "seq") if k in b)
        out.print(f"BROKEN: first broken record in table {b['table']} ({where}): {b['problem']}", highlight=False)
    if not result["ok"]:
        raise typer.Exit(1)


def _parse_since(value: str) -> datetime:
    """An ISO date or datetime (naive means UTC), or a duration back from now: 30m, 24h, 7d, 2w."""
    duration = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", value)
    if duration:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[duration.group(2)]
        return datetime.now(timezone.utc) - timedelta(**{unit: int(duration.group(1))})
    try:
        since = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an ISO date/datetime (2026-11-01, 2026-11-01T08:00Z) "
                                 "nor a duration (30m, 24h, 7d, 2w)", param_hint="--since") from None
    return since.replace(tzinfo=timezone.utc) if since.tzinfo is None else since


@audit_app.command("export")
def audit_export(
    since: Annotated[Optional[str], typer.Option(help="runs started at/after: ISO date or datetime (UTC if no offset), or a duration back from now (24h, 7d)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="output format (only jsonl)")] = "jsonl",
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write to this file (default: stdout)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Export runs with their attempts, review and ledger hash, one JSON object per line."""
    from orchestrator import AuditStore, load_settings

    if fmt != "jsonl":
        raise typer.BadParameter(f"unsupported format {fmt!r}; only jsonl is supported", param_hint="--format")
    start = _parse_since(since) if since is not None else None
    n = 0
    try:
        store = AuditStore(load_settings(config).audit_url)
        with (out_file.open("w", encoding="utf-8") if out_file else nullcontext(sys.stdout)) as sink:
            for row in store.export(since=start):
                sink.write(json.dumps(row) + "\n")
                n += 1
    except CascadeError as exc:
        fail(exc)
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot write {out_file}: {exc.strerror}", highlight=False)
        raise typer.Exit(1) from None
    if out_file:
        err.print(f"exported {n} run(s) to {out_file}", highlight=False)


@review_app.command("list")
def review_list(
    task: Annotated[Optional[str], typer.Option(help="only this task")] = None,
    limit: Annotated[int, typer.Option(help="how many, oldest first")] = 100,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs waiting for a person (needs_review, not yet resolved), oldest first."""
    from orchestrator import Cascade

    try:
        with Cascade.from_config(config) as cascade:
            runs = cascade.review_queue(task=task, limit=limit)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(runs))
        return
    table = Table("run", "started", "task", "labels", "tier answers", "reason")
    for r in runs:
        answers = ", ".join(f"{a['tier_name']}: {a['answer'] or '-'}" for a in r["attempts"])
        table.add_row(r["id"], r["started_at"][:19], r["task"], ", ".join(r["params"].get("labels") or []),
                      answers or "-", r["reason"])
    out.print(table)
    out.print(f"{len(runs)} run(s) waiting; resolve with `cascade review resolve RUN_ID --answer X --reviewer NAME`")


@review_app.command("resolve")
def review_resolve(
    run_id: Annotated[str, typer.Argument(help="the needs_review run")],
    answer: Annotated[str, typer.Option(help="the reviewer's answer (one of the run's labels)")],
    reviewer: Annotated[str, typer.Option(help="who decided")],
    note: Annotated[str, typer.Option(help="why, for the audit log")] = "",
    text: Annotated[Optional[str], typer.Option(help="the item's text (the audit log keeps only its hash): "
                                                "given, the answer also becomes a stored example")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a reviewer's answer for a needs_review run (once; audited)."""
    from orchestrator import Cascade

    try:
        with Cascade.from_config(config) as cascade:
            review = cascade.resolve_review(run_id, answer, reviewer, note, text=text)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(review))
    else:
        out.print(f"resolved run {run_id}: {review['answer']} (by {review['reviewer']})", highlight=False)
        if "workflow" in review:  # the run was a workflow step: the workflow resumed with the answer
            wf = review["workflow"]
            waiting = "".join(f"; waiting at {w['step']} for review run {w['review_run_id']}" for w in wf["waiting"])
            out.print(f"resumed workflow {wf['workflow']} run {wf['run_id']}: {wf['status']}{waiting}", highlight=False)
