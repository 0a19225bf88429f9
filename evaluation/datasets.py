"""Loaders for the public labelled sets (banking77, the SMS spam collection, Mendeley smishing),
each returning a `Dataset` of `orchestrator.core.labelled`; `load_named` also takes a JSONL path.

The shared data lives outside the repo. Its root is, in order: the `root` argument, the
environment variable CASCADE_EVAL_DATA, else `../shared/data` next to the repo checkout.
Files are read as untrusted text: undecodable bytes become U+FFFD, never a crash; a malformed
row raises `InvalidInputError` naming the file and row.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

from agents.errors import InvalidInputError
from orchestrator.core.labelled import (
    SPAM_LABELS, Dataset, Example, load_jsonl, malformed, read_text, relabel, split,
)

__all__ = [
    "ENV_VAR", "NAMED_SETS", "Dataset", "Example", "data_root", "load_banking77", "load_jsonl",
    "load_named", "load_smishing", "load_sms_spam", "relabel", "split",
]

ENV_VAR = "CASCADE_EVAL_DATA"
NAMED_SETS = ("banking77", "sms", "smishing")


def data_root(root: str | Path | None = None) -> Path:
    """The evaluation data directory: `root`, else $CASCADE_EVAL_DATA, else ../shared/data."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _file(root: str | Path | None, *parts: str) -> Path:
    path = data_root(root).joinpath(*parts)
    if not path.is_file():
        raise InvalidInputError(
            f"evaluation data file {path} does not exist; pass the data root explicitly or set "
            f"{ENV_VAR} to the directory holding {parts[0]}/")
    return path


# -- banking77 ----------------------------------------------------------------------------------

def load_banking77(split: str = "train", root: str | Path | None = None) -> Dataset:
    """banking77 `train` or `test`: CSV `text,category`, 77 intents. The model sees each intent
    with underscores as spaces ("card_arrival" -> "card arrival"), in categories.json order."""
    if split not in ("train", "test"):
        raise InvalidInputError(f"banking77 split must be 'train' or 'test', got {split!r}")
    categories_path = _file(root, "banking77", "categories.json")
    try:
        categories = json.loads(read_text(categories_path))
    except ValueError as exc:
        raise InvalidInputError(f"{categories_path} is not valid JSON: {exc}") from None
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        raise InvalidInputError(f"{categories_path} must hold a JSON list of category names")
    shown = {c: c.replace("_", " ") for c in categories}
    path = _file(root, "banking77", f"{split}.csv")
    examples = []
    reader = csv.reader(read_text(path).splitlines(keepends=True))
    header = next(reader, None)
    if header != ["text", "category"]:
        raise malformed(path, 1, f"expected the header 'text,category', got {header!r}")
    for row in reader:
        line = reader.line_num
        if len(row) != 2:
            raise malformed(path, line, f"expected 2 fields (text, category), got {len(row)}")
        text, category = row[0].strip(), row[1].strip()
        if not text:
            raise malformed(path, line, "empty text")
        if category not in shown:
            raise malformed(path, line, f"category {category!r} is not in {categories_path.name}")
        examples.append(Example(text, shown[category]))
    return Dataset(f"banking77-{split}", examples, [shown[c] for c in categories],
                   {v: k for k, v in shown.items()})


# -- SMS spam sets ------------------------------------------------------------------------------

def load_sms_spam(root: str | Path | None = None) -> Dataset:
    """The UCI SMS Spam Collection: TSV `label<TAB>text`, no header, labels spam/ham."""
    path = _file(root, "sms_spam_collection", "SMSSpamCollection")
    examples = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        label = label.strip().lower()
        if not tab:
            raise malformed(path, line_no, "no TAB between label and text")
        if label not in SPAM_LABELS:
            raise malformed(path, line_no, f"label {label!r} is neither 'spam' nor 'ham'")
        if not text.strip():
            raise malformed(path, line_no, "empty text")
        examples.append(Example(text.strip(), label))
    return Dataset("sms", examples, list(SPAM_LABELS), {l: l for l in SPAM_LABELS})


_SMISHING_MAP = {"smishing": "spam", "spam": "spam", "ham": "ham"}


def load_smishing(root: str | Path | None = None) -> Dataset:
    """The Mendeley smishing set: CSV `LABEL,TEXT,URL,EMAIL,PHONE`; label case varies. Smishing
    and spam both become "spam", ham stays "ham". Replacement characters are kept as text."""
    path = _file(root, "smishing_mendeley", "Mendeley_Dataset_5971.csv")
    reader = csv.reader(read_text(path).splitlines(keepends=True))
    header = next(reader, None)
    if not header or [h.strip().upper() for h in header[:2]] != ["LABEL", "TEXT"]:
        raise malformed(path, 1, f"expected a header starting LABEL,TEXT, got {header!r}")
    examples = []
    for row in reader:
        line = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise malformed(path, line, f"expected at least 2 fields (LABEL, TEXT), got {len(row)}")
        label = row[0].strip().lower()
        if label not in _SMISHING_MAP:
            raise malformed(path, line, f"label {row[0]!r} is none of ham, spam, smishing")
        if not row[1].strip():
            raise malformed(path, line, "empty text")
        examples.append(Example(row[1].strip(), _SMISHING_MAP[label]))
    return Dataset("smishing", examples, list(SPAM_LABELS), {"spam": "spam|smishing", "ham": "ham"})


def load_named(data: str, part: str = "train", root: str | Path | None = None,
               labels: Sequence[str] | None = None) -> Dataset:
    """`banking77` (part train/test), `sms`, `smishing`, or a path to a JSONL file."""
    if data == "banking77":
        return load_banking77(part, root)
    if data == "sms":
        return load_sms_spam(root)
    if data == "smishing":
        return load_smishing(root)
    if data.endswith(".jsonl") or Path(data).expanduser().is_file():
        return load_jsonl(data, labels)
    raise InvalidInputError(f"unknown data set {data!r}; use one of {', '.join(NAMED_SETS)} or a JSONL file path")


