"""Batch input: reading a JSONL or CSV file of items, one row at a time, within size limits.

Input files, per task family:
classify
    JSONL: one object per line: {"id": optional string or number, "text": "...", "labels": ["a", "b"],
           "confidential": optional true/false}.
    CSV:   a header row naming the columns `text` (required), `id`, `labels` and `confidential`
           (optional); a `labels` cell holds the labels separated by "|" (e.g. `spam|ham`) or a
           JSON array; a `confidential` cell is true/false/1/0/yes/no or empty.
    A confidential item never goes to an external tier (it ends in needs_review instead) and never
    becomes a stored example.
    `labels` may be left out of every row when the job is given labels (`--label` / `labels=`);
    a row's own labels take precedence over the job's. Unknown JSONL keys fail that row; unknown
    CSV columns fail the file.
fraud
    The same without labels (the task's are fixed: fraud, legit): JSONL {"id": optional, "text":
    "...", "confidential": optional true/false}; CSV columns `text`, `id`, `confidential`.
workflow
    JSONL {"id": optional, "text": "..."}; CSV columns `text`, `id`. The job names the registered
    workflow and its options (`--workflow`, `-o key=value`), checked once at submit; each row's
    text is checked as that workflow's input (e.g. a contract's length).

Blank lines are skipped. A malformed row (not JSON, missing text, too few labels, too long...)
becomes an `invalid` item with its error and does not stop the file. A file over the size limit
is rejected before it is read; no row is ever read past the row limit, so a file is never held
in memory whole.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from agents import classify as classification
from agents.errors import InvalidInputError, UnknownTaskError


_TOO_LONG = "__cascade_row_over_limit__"  # stands in for a CSV line that is not read
_NOT_UTF8 = "__cascade_row_not_utf8__"
RAW_KEEP = 500  # characters of an invalid row kept for its error report


@dataclass
class Row:
    """One data row of the file: its payload, or why it is invalid."""

    seq: int  # data row number, from 1
    line: int  # physical line where the row starts, from 1 (for messages)
    external_id: str | None
    payload: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None


class ClassifyRows:
    task = "classify"
    fields = ("id", "text", "labels", "confidential")
    example = '{"id": "m1", "text": "Free prize, call now", "labels": ["spam", "ham"]}'

    def job_params(self, labels: list[str] | None, workflow: str | None = None,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
        _no_workflow(self.task, workflow, options)
        return {} if not labels else {"labels": classification.validate_labels(list(labels))}

    def payload(self, row: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        text = classification.validate_text(row.get("text"))
        labels = row.get("labels")
        if labels in (None, "", []):
            labels = params.get("labels")
            if labels is None:
                raise InvalidInputError('no labels: give "labels" in the row, or labels for the whole job (--label)')
        return _with_confidential({"text": text, "labels": classification.validate_labels(labels)}, row)

    def csv_cell(self, column: str, value: str) -> Any:
        if column == "confidential" and value.strip():
            flag = value.strip().lower()
            if flag not in _FLAGS:
                raise InvalidInputError(f"confidential cell must be one of {sorted(_FLAGS)}, not {value!r}")
            return _FLAGS[flag]
        if column != "labels" or not value.strip():
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"labels cell is not a valid JSON array: {exc.msg}") from None
        return [part.strip() for part in value.split("|")]


class FraudRows(ClassifyRows):
    """A message or a transaction described in text; the labels are the task's own."""

    task = "fraud"
    fields = ("id", "text", "confidential")
    example = '{"id": "t1", "text": "Your parcel is held: pay the fee at http://bit.ly/x"}'

    def job_params(self, labels: list[str] | None, workflow: str | None = None,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
        _no_workflow(self.task, workflow, options)
        if labels:
            raise InvalidInputError("the fraud task has fixed labels (fraud, legit); give no --label")
        return {}

    def payload(self, row: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return _with_confidential({"text": classification.validate_text(row.get("text"))}, row)


class WorkflowRows(ClassifyRows):
    """One input text per row for a registered workflow; the job holds the workflow and its options."""

    task = "workflow"
    fields = ("id", "text")
    example = '{"id": "c1", "text": "I lost my card yesterday"}'

    def job_params(self, labels: list[str] | None, workflow: str | None = None,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
        from orchestrator.workflows import registry  # loads LangGraph: only for workflow jobs

        if labels:
            raise InvalidInputError("a workflow job takes no --label; give the workflow's own options "
                                    "(e.g. -o labels=a,b for support-triage)")
        if not workflow:
            raise InvalidInputError(f"a workflow job needs the workflow's name (--workflow); registered "
                                    f"workflows: {', '.join(registry.names())}")
        options = dict(options or {})
        registry.get(workflow).check_options(options)
        return {"workflow": workflow, "options": options}

    def payload(self, row: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        from orchestrator.workflows import registry

        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"text is missing or empty; give the input of workflow {params['workflow']}")
        registry.get(params["workflow"]).make_input(text, params["options"])  # the workflow's own input checks
        return {"text": text}

    def csv_cell(self, column: str, value: str) -> Any:
        return value


def _no_workflow(task: str, workflow: str | None, options: dict[str, Any] | None) -> None:
    if workflow or options:
        raise InvalidInputError(f"a workflow and its options go with --task workflow, not --task {task}")


def _with_confidential(payload: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    confidential = row.get("confidential")
    if confidential not in (None, ""):
        if not isinstance(confidential, bool):
            raise InvalidInputError(f'"confidential" must be true or false, not {confidential!r}')
        payload["confidential"] = confidential
    return payload


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
ROW_FORMATS: dict[str, ClassifyRows] = {"classify": ClassifyRows(), "fraud": FraudRows(), "workflow": WorkflowRows()}


def row_format(task: str) -> ClassifyRows:
    if task not in ROW_FORMATS:
        raise UnknownTaskError(f"unknown task {task!r} for a batch; known tasks: {', '.join(ROW_FORMATS)}")
    return ROW_FORMATS[task]


def check_file(path: Path, max_bytes: int, input_format: str | None) -> str:
    """Reject a missing, empty, oversized or unknown-format file before reading it; return its format."""
    if not path.is_file():
        raise InvalidInputError(f"input file {path} does not exist or is not a file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"input file {path} is empty; give one item per row (JSONL or CSV)")
    if size > max_bytes:
        raise InvalidInputError(
            f"input file {path} is {size / 2**20:.1f} MB, over the limit of {max_bytes / 2**20:.1f} MB; split it "
            f"into several jobs or raise CASCADE_BATCH_MAX_FILE_MB")
    fmt = (input_format or path.suffix.lstrip(".")).lower()
    fmt = {"ndjson": "jsonl", "json": "jsonl"}.get(fmt, fmt)
    if fmt not in ("jsonl", "csv"):
        raise InvalidInputError(f"cannot tell the format of {path.name}: name it .jsonl or .csv, or give the format "
                                f"(--format jsonl|csv)")
    return fmt


def read_rows(path: Path, fmt: str, task: str, params: dict[str, Any], max_row_bytes: int) -> Iterator[Row]:
    """The file's rows, one at a time. File-level problems raise InvalidInputError before the first row."""
    spec = row_format(task)
    if fmt == "jsonl":
        return _jsonl_rows(path, spec, params, max_row_bytes)
    return _csv_rows(path, spec, params, max_row_bytes)


def _bounded_lines(binary, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) for every physical line; None for a line over `limit` bytes, which is
    skipped in chunks and never held whole."""
    number = 0
    while True:
        line = binary.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # discard the rest of the over-long line
                rest = binary.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line


def _jsonl_rows(path: Path, spec, params, limit: int) -> Iterator[Row]:
    seq = 0
    with path.open("rb") as binary:
        for number, line in _bounded_lines(binary, limit):
            if line is not None and not line.strip():
                continue
            seq += 1
            where = f"line {number}"
            if line is None:
                yield Row(seq, number, None, None, f"{where}: row longer than {limit // 1024} KB "
                          "(CASCADE_BATCH_MAX_ROW_KB)", raw=None)
                continue
            raw = line.decode("utf-8", errors="replace").strip()
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise InvalidInputError(f"a row must be a JSON object like {spec.example}")
                unknown = sorted(set(data) - set(spec.fields))
                if unknown:
                    raise InvalidInputError(f"unknown key(s) {unknown}; a {spec.task} row has {list(spec.fields)}")
                yield Row(seq, number, _external_id(data.get("id")), spec.payload(data, params))
            except json.JSONDecodeError as exc:
                yield Row(seq, number, None, None, f"{where}: not valid JSON ({exc.msg} at column {exc.colno})",
                          raw=raw[:RAW_KEEP])
            except UnicodeDecodeError:
                yield Row(seq, number, None, None, f"{where}: not UTF-8 text", raw=raw[:RAW_KEEP])
            except InvalidInputError as exc:
                yield Row(seq, number, _safe_id(data), None, f"{where}: {exc.message}", raw=raw[:RAW_KEEP])


def _csv_rows(path: Path, spec, params, limit: int) -> Iterator[Row]:
    binary = path.open("rb")
    lines = _csv_lines(binary, limit)
    try:
        csv.field_size_limit(max(limit, 1024))
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidInputError(f"{path} has no header row; the first row must name the columns, e.g. id,text,labels") from None
        header = [h.strip().lstrip("\ufeff") for h in header]
        unknown = sorted(set(header) - set(spec.fields))
        if "text" not in header or unknown:
            raise InvalidInputError(
                f"{path}: the header row must name a 'text' column and only the columns {list(spec.fields)}; "
                f"got {header}")
    except BaseException:
        binary.close()
        raise
    return _csv_data(binary, reader, header, spec, params, limit)


def _csv_data(binary, reader, header, spec, params, limit: int) -> Iterator[Row]:
    seq = 0
    with binary:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                seq += 1
                yield Row(seq, start, None, None, f"line {start}: malformed CSV ({exc})")
                continue
            if not cells or all(not c.strip() for c in cells):
                continue
            seq += 1
            where = f"line {start}"
            if cells == [_TOO_LONG]:
                yield Row(seq, start, None, None, f"{where}: row longer than {limit // 1024} KB (CASCADE_BATCH_MAX_ROW_KB)")
                continue
            if cells == [_NOT_UTF8]:
                yield Row(seq, start, None, None, f"{where}: not UTF-8 text")
                continue
            raw = ",".join(cells)[:RAW_KEEP]
            if len(cells) != len(header):
                yield Row(seq, start, None, None, f"{where}: {len(cells)} cells for {len(header)} columns", raw=raw)
                continue
            data = dict(zip(header, cells))
            try:
                data = {k: spec.csv_cell(k, v) for k, v in data.items()}
                yield Row(seq, start, _external_id(data.get("id")), spec.payload(data, params))
            except InvalidInputError as exc:
                yield Row(seq, start, _safe_id(data), None, f"{where}: {exc.message}", raw=raw)


def _csv_lines(binary, limit: int) -> Iterator[str]:
    for _, line in _bounded_lines(binary, limit):
        if line is None:
            yield _TOO_LONG + "\n"
            continue
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            yield _NOT_UTF8 + "\n"


def _external_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInputError(f"id must be a string or a number, not {type(value).__name__}")
    text = str(value)
    if len(text) > 256:
        raise InvalidInputError("id is longer than 256 characters")
    return text


def _safe_id(data: Any) -> str | None:
    try:
        return _external_id(data.get("id")) if isinstance(data, dict) else None
    except InvalidInputError:
        return None
