"""`cascade contract PATH` and `cascade bench contract-spans`: contract clause review.

Registered in cli/main.py (`app.command("contract")(contract)`, `bench_app.command("contract-spans")
(bench_contract_spans)`); the work is `Cascade.contract` and evaluation.benchmarks.contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from agents.contract_categories import CATEGORIES, DEFAULT_CATEGORIES
from agents.contracts import ContractReview
from agents.documents import read_document
from agents.errors import CascadeError
from cli.common import ConfigOpt, JsonOpt, err, fail, out

__all__ = ["bench_contract_spans", "contract"]

CategoryOpt = Annotated[list[str] | None, typer.Option(
    "--category", help=f"a clause category; repeat for each (default: {', '.join(DEFAULT_CATEGORIES)}; "
                       f"known: {', '.join(CATEGORIES)})")]
PassagesOpt = Annotated[int, typer.Option("--k", help="passages retrieved and shown per category")]


def contract(path: Annotated[Path, typer.Argument(help="the contract as a UTF-8 text file (.txt or .md)")],
             category: CategoryOpt = None, k: PassagesOpt = 3, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Review the contract at PATH: per clause category, whether a clause is present, its exact text, and a risk flag."""
    from orchestrator import Cascade

    try:
        text = read_document(path)  # missing, empty, binary, not UTF-8: a clear error before any model loads
        with Cascade.from_config(config) as cascade:
            review = cascade.contract(text, categories=category, k=k)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(review.model_dump_json())
        return
    _print(review)


def _print(review: ContractReview) -> None:
    table = Table("category", "present", "risk", "why", "clause", "tier", title=f"{review.chars:,} characters, "
                  f"{review.chunks} chunks, sha256 {review.contract_sha256[:12]}")
    for r in review.results:
        present = "-" if r.present is None else ("yes" if r.present else "not found")
        why = r.risk_reason if r.present is not None else f"{r.risk_reason} ({r.reason})"
        at = f" [{r.clause_start}-{r.clause_end}]" if r.clause_start is not None else ""
        table.add_row(r.category, present, r.risk, Text(why), Text((r.clause or "") + at), r.tier_name or "-")
    out.print(table)
    out.print("audit runs: " + ", ".join(r.run_id for r in review.results))


def bench_contract_spans(
    contracts: Annotated[int, typer.Option("--contracts", help="CUAD contracts to review (in CSV order)")] = 10,
    category: Annotated[list[str] | None, typer.Option("--category", "--categories", help="a clause category; "
                        "repeat for each")] = None,
    k: PassagesOpt = 3,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Span-check precision, presence accuracy and time per (contract, category) of tier 1 on CUAD."""
    from evaluation.benchmarks.contract import contract_spans

    names = category or ["Governing Law", "Cap on Liability", "Termination for Convenience", "Non-Compete"]
    try:
        result = contract_spans(contracts, names, k=k, config=config,
                                progress=None if as_json else lambda line: err.print(line))
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table("measure", "value", title=f"contract-spans: {result['n_contracts']} CUAD contracts x "
                  f"{len(result['categories'])} categories, tier 1 ({result['model']}, one thread)")
    for key, value in result.items():
        if key not in ("per_category", "categories"):
            table.add_row(key, str(value))
    out.print(table)
    per = Table("category", *next(iter(result["per_category"].values())).keys())
    for name, row in result["per_category"].items():
        per.add_row(name, *map(str, row.values()))
    out.print(per)
