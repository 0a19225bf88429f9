"""`cascade fraud`: flag one message or transaction as fraud or legit, with its risk indicators.

Registered in cli/main.py with `app.command("fraud")(fraud)`; the work is `Cascade.fraud`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from agents.errors import CascadeError, InvalidInputError
from agents.fraud import FraudResult
from cli.common import ConfigOpt, JsonOpt, fail, out

__all__ = ["fraud"]

MAX_FILE_BYTES = 1 << 20  # one message, not a batch: `cascade batch submit --task fraud` takes files of many


def fraud(
    text: Annotated[Optional[str], typer.Argument(help="the message or transaction text; '-' reads it from stdin")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="read one message from this file (UTF-8)")] = None,
    confidential: Annotated[bool, typer.Option(help="never send it to an external tier, never keep it as an example")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Flag TEXT as fraud or legit, with the risk indicators found in it and a calibrated confidence."""
    from orchestrator import Cascade

    try:
        message = _read_message(text, file)
        with Cascade.from_config(config) as cascade:
            result = cascade.fraud(message, confidential=confidential)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(result.model_dump_json())
        return
    _print(result)


def _read_message(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        raise InvalidInputError("give the message as TEXT ('-' for stdin) or --file PATH, exactly one of them")
    if file is None:
        return sys.stdin.read() if text == "-" else text
    if not file.is_file():
        raise InvalidInputError(f"{file} does not exist or is not a file")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInputError(f"{file} is over {MAX_FILE_BYTES >> 20} MB; give one message per file, or use "
                                "`cascade batch submit --task fraud` for many")
    return file.read_text(encoding="utf-8", errors="replace")  # untrusted text: bad bytes become U+FFFD


def _print(result: FraudResult) -> None:
    verdict = Table("verdict", "confidence", "tier", "outcome", "reason")
    confidence = f"{result.confidence:.3f}" if result.confidence is not None else "-"
    verdict.add_row(result.verdict or f"({result.outcome})", confidence, result.tier_name or "-", result.outcome,
                    Text(result.reason))
    out.print(verdict)
    if result.indicators:
        found = Table("indicator", "evidence", "at", "detail", title="risk indicators (evidence, not the verdict)")
        for i in result.indicators:
            found.add_row(i.name, Text(i.evidence), f"{i.start}-{i.end}", Text(i.detail))  # text, never markup
        out.print(found)
    else:
        out.print("no risk indicators found by the rules")
    out.print(f"audit run: {result.run_id}")
