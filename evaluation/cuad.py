"""CUAD v1 (The Atticus Project, CC BY 4.0) for measuring contract review: contracts and gold clauses.

`master_clauses.csv` has one row per contract: `Filename`, then per category a column of clause
spans (a Python-style list string) and a `<category>-Answer` column (Yes/No, or a value such as a
state for Governing Law). The text is in `full_contract_txt/*.txt`, but the Filename column does
not always name that file: `.pdf`/`.PDF` suffixes, `&` and `'` written `_` in the file name, a stray
trailing quote, a doubled dot, an accented letter in another Unicode form. Rows are matched to files
on a normalised name; a row with no file is reported in `unmatched`, never a crash.
"""

from __future__ import annotations

import ast
import csv
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from agents.errors import InvalidInputError

from evaluation.datasets import ENV_VAR, data_root

CUAD_DIR = "cuad"


@dataclass(frozen=True)
class Gold:
    """CUAD's annotation of one category in one contract."""

    spans: tuple[str, ...]  # the annotated clause texts (empty: none annotated)
    answer: str  # the -Answer column as written

    @property
    def present(self) -> bool:
        """Per the -Answer column: Yes, or a value (e.g. a state for Governing Law); No or empty is absent."""
        return self.answer.strip() not in ("", "No")


@dataclass(frozen=True)
class CuadContract:
    filename: str  # as the CSV writes it
    path: Path  # the text file it was matched to
    gold: dict[str, Gold]

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Cuad:
    contracts: list[CuadContract]
    unmatched: list[str] = field(default_factory=list)  # Filename values with no text file
    categories: list[str] = field(default_factory=list)


def normalise_name(name: str) -> str:
    """A file name reduced to what the CSV and the directory agree on: no .pdf/.txt suffix or stray
    quotes, accents and case folded, every run of other characters one underscore."""
    name = unicodedata.normalize("NFKD", name)
    name = "".join(ch for ch in name if not unicodedata.combining(ch)).casefold().strip().strip("'\"")
    name = re.sub(r"\.(pdf|txt)$", "", name.strip())
    return re.sub(r"[^0-9a-z]+", "_", name).strip("_")


def load_cuad(root: str | Path | None = None, limit: int | None = None) -> Cuad:
    """CUAD's contracts (in CSV order; the first `limit` matched ones) with their gold per category."""
    base = data_root(root) / CUAD_DIR
    table, texts = base / "master_clauses.csv", base / "full_contract_txt"
    if not table.is_file() or not texts.is_dir():
        raise InvalidInputError(f"CUAD not found at {base} (master_clauses.csv and full_contract_txt/); pass the data "
                                f"root or set {ENV_VAR} to the directory holding cuad/")
    files = {normalise_name(p.name): p for p in texts.glob("*.txt")}
    csv.field_size_limit(sys.maxsize)  # a span column holds every annotated clause of a contract
    data = Cuad(contracts=[])
    with table.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        data.categories = [c for c in columns if c != "Filename" and f"{c}-Answer" in columns]
        for line, row in enumerate(reader, start=2):
            path = files.get(normalise_name(row["Filename"]))
            if path is None:
                data.unmatched.append(row["Filename"])
                continue
            gold = {c: Gold(_spans(row[c], table, line, c), row[f"{c}-Answer"] or "") for c in data.categories}
            data.contracts.append(CuadContract(row["Filename"], path, gold))
            if limit is not None and len(data.contracts) >= limit:
                break
    return data


def _spans(cell: str | None, table: Path, line: int, column: str) -> tuple[str, ...]:
    try:
        spans = ast.literal_eval(cell or "[]")  # a literal only: never evaluates code
    except (ValueError, SyntaxError):
        raise InvalidInputError(f"{table} line {line}, column {column!r}: not a list of clause texts") from None
    if not isinstance(spans, list) or not all(isinstance(s, str) for s in spans):
        raise InvalidInputError(f"{table} line {line}, column {column!r}: not a list of clause texts")
    return tuple(s for s in spans if s.strip())
