"""`cascade docs add|list` and `cascade ask`: document QA over ingested text and markdown files.

Registered in cli/main.py; the work is `Cascade.add_documents`, `Cascade.documents` and `Cascade.ask`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from agents.errors import CascadeError
from agents.qa import AnswerResult
from cli.common import ConfigOpt, JsonOpt, command_group, fail, out

__all__ = ["ask", "docs_app"]

docs_app = command_group("Documents that `cascade ask` answers from.")


def _cascade(config: Path | None):
    from orchestrator import Cascade

    return Cascade.from_config(config)


@docs_app.command("add")
def docs_add(paths: Annotated[list[Path], typer.Argument(help="text or markdown files (.txt, .md)")],
             config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Chunk, embed and store files (a file already stored with the same content is skipped)."""
    try:
        with _cascade(config) as cascade:
            added = cascade.add_documents(paths)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([a.model_dump() for a in added]))
        return
    for a in added:
        note = " (already stored, unchanged)" if a.already_stored else (
            f" (replaced {a.replaced} chunks of an earlier version)" if a.replaced else "")
        out.print(Text(f"{a.path}: {a.chunks} chunks added{note}"), soft_wrap=True)


@docs_app.command("list")
def docs_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List stored documents."""
    try:
        with _cascade(config) as cascade:
            rows = cascade.documents.documents()
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("path", "chunks", "chars", "sha256", "added")
    for r in rows:
        table.add_row(Text(r["path"]), str(r["chunks"]), str(r["chars"]), r["doc_hash"][:12], r["added_at"] or "-")
    out.print(table)


def ask(question: Annotated[str, typer.Argument(help="the question to answer from the ingested documents")],
        k: Annotated[int, typer.Option("--k", help="passages retrieved and shown to the model")] = 4,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Answer QUESTION from the ingested documents, citing the passages used, or say it cannot."""
    try:
        with _cascade(config) as cascade:
            result = cascade.ask(question, k=k)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(result.model_dump_json())
        return
    _print(result)


def _print(result: AnswerResult) -> None:
    if result.outcome == "accepted":
        out.print(Text(result.answer if result.answer is not None else "cannot answer from the documents"))
    else:
        out.print(Text(f"no answer kept ({result.outcome}): {result.reason}"))
    if result.citations:
        table = Table("#", "file", "chars", "quote", title="citations")
        for c in result.citations:
            table.add_row(str(c.passage), Text(c.path), f"{c.start}-{c.end}", Text(c.quote))
        out.print(table)
    checks = Table("check", "passed", "score", "reason", title=f"checks ({result.tier_name or 'no tier kept'})")
    for c in result.checks:
        checks.add_row(c.name, "yes" if c.passed else "NO", "-" if c.score is None else f"{c.score:.3f}", Text(c.reason))
    out.print(checks)
    out.print(f"audit run: {result.run_id}")
