"""Reading labelled example files (JSONL or CSV with `text` and `label`) for the example store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from agents.errors import InvalidInputError
from agents.retrieval import Example


def read_examples(path: Path) -> list[Example]:
    """Every row as an Example whose source is the file; a bad row is an error naming it."""
    if not path.is_file():
        raise InvalidInputError(f"example file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise InvalidInputError(f"example file {path} must be .jsonl or .csv with 'text' and 'label' fields")
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        rows = _jsonl_rows(f, path) if suffix == ".jsonl" else _csv_rows(f, path)
        examples = [_example(row, n, path) for n, row in rows]
    if not examples:
        raise InvalidInputError(f"example file {path} holds no rows")
    return examples


def _jsonl_rows(f, path: Path):
    for n, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path} line {n}: not valid JSON ({exc.msg})") from None


def _csv_rows(f, path: Path):
    reader = csv.DictReader(f)
    missing = {"text", "label"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidInputError(f"{path}: the header lacks column(s) {sorted(missing)}; it has {reader.fieldnames}")
    for n, row in enumerate(reader, start=2):
        yield n, row


def _example(row, n: int, path: Path) -> Example:
    if not isinstance(row, dict):
        raise InvalidInputError(f"{path} row {n}: expected an object with 'text' and 'label'")
    text, label = row.get("text"), row.get("label")
    for field, value in (("text", text), ("label", label)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{path} row {n}: field '{field}' is missing or empty")
    return Example(text=text, label=label.strip(), source=str(path))
