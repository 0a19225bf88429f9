"""What every `cascade` command shares: the consoles, the common options, and how errors end a command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from agents.errors import CascadeError, InvalidInputError, UserError
from agents.results import CascadeResult

out = Console()
err = Console(stderr=True, soft_wrap=True)  # error text stays on one line for grep and logs

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (else $CASCADE_CONFIG, else the default ladder)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for pipelines")]
WorkflowOptionsOpt = Annotated[list[str], typer.Option("--option", "-o", help="a workflow option, key=value (a JSON "
                                                       "value, or text; lists as a,b,c)")]


def workflow_options(raw: list[str]) -> dict[str, Any]:
    """`-o key=value` options of a workflow: each value parsed as JSON if it is JSON, else kept as text."""
    options = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"option {item!r} is not key=value (e.g. -o k=4, -o categories='Governing Law')")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def fail(exc: CascadeError) -> NoReturn:
    """Print the error and exit: 2 for what the caller can fix, 1 for the rest."""
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(2 if isinstance(exc, UserError) else 1)


def command_group(help: str) -> typer.Typer:
    """A `cascade` command group. Markdown help joins a docstring's own line breaks, so rich wraps
    each paragraph to the terminal (rich mode keeps them and breaks lines mid-wrap)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode="markdown")


def results_table(results: list[tuple[str, CascadeResult]]) -> Table:
    table = Table("text", "answer", "tier", "confidence", "reason", show_lines=False)
    for text, r in results:
        conf = f"{r.confidence:.3f}" if r.confidence is not None else "-"
        table.add_row(text[:60], r.answer or f"({r.outcome})", r.tier_name or "-", conf, r.reason)
    return table
