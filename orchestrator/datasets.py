"""Labelled evaluation data for calibration: loaders for the public sets, JSONL, and splits.

Every loader returns a `Dataset`: examples whose `label` is the label exactly as the model sees
it in the prompt, the ordered label list (keep it identical across items so the prompt prefix is
reused), and the mapping back to the label spelled in the source file.

The shared data lives outside the repo. Its root is, in order: the `root` argument, the
environment variable CASCADE_EVAL_DATA, else `../shared/data` next to the repo checkout.
Files are read as untrusted text: undecodable bytes become U+FFFD, never a crash; a malformed
row raises `InvalidInputError` naming the file and row.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agents.errors import InvalidInputError

__all__ = [
    "ENV_VAR", "NAMED_SETS", "Dataset", "Example", "data_root", "load_banking77", "load_jsonl",
    "load_named", "load_smishing", "load_sms_spam", "relabel", "split",
]

ENV_VAR = "CASCADE_EVAL_DATA"
SPAM_LABELS = ["spam", "ham"]  # the label set of both SMS sets, in prompt order
# How a data set's labels read as a fixed-label task's: SMS spam is what fraud flagging calls "fraud".
_RENAMES = {frozenset(SPAM_LABELS): {"spam": "fraud", "ham": "legit"}}
NAMED_SETS = ("banking77", "sms", "smishing")


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # as the model sees it (a member of Dataset.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    examples: list[Example]
    labels: list[str]  # prompt labels, in prompt order
    source_labels: dict[str, str] = field(default_factory=dict)  # prompt label -> label in the file

    def __len__(self) -> int:
        return len(self.examples)

    def gold_index(self, examples: Sequence[Example] | None = None) -> np.ndarray:
        """Index of each example's label in `labels` (the column order of collected log-probs)."""
        position = {label: i for i, label in enumerate(self.labels)}
        return np.array([position[e.label] for e in (self.examples if examples is None else examples)],
                        dtype=np.int64)


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


def _read_text(path: Path) -> str:
    # utf-8-sig drops a byte-order mark; errors="replace" turns bad bytes into U+FFFD.
    return path.read_text(encoding="utf-8-sig", errors="replace")


def _malformed(path: Path, row: int, problem: str) -> InvalidInputError:
    return InvalidInputError(f"{path}, row {row}: {problem}; fix or remove that row")


# -- banking77 ----------------------------------------------------------------------------------

def load_banking77(split: str = "train", root: str | Path | None = None) -> Dataset:
    """banking77 `train` or `test`: CSV `text,category`, 77 intents. The model sees each intent
    with underscores as spaces ("card_arrival" -> "card arrival"), in categories.json order."""
    if split not in ("train", "test"):
        raise InvalidInputError(f"banking77 split must be 'train' or 'test', got {split!r}")
    categories_path = _file(root, "banking77", "categories.json")
    try:
        categories = json.loads(_read_text(categories_path))
    except ValueError as exc:
        raise InvalidInputError(f"{categories_path} is not valid JSON: {exc}") from None
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        raise InvalidInputError(f"{categories_path} must hold a JSON list of category names")
    shown = {c: c.replace("_", " ") for c in categories}
    path = _file(root, "banking77", f"{split}.csv")
    examples = []
    reader = csv.reader(_read_text(path).splitlines(keepends=True))
    header = next(reader, None)
    if header != ["text", "category"]:
        raise _malformed(path, 1, f"expected the header 'text,category', got {header!r}")
    for row in reader:
        line = reader.line_num
        if len(row) != 2:
            raise _malformed(path, line, f"expected 2 fields (text, category), got {len(row)}")
        text, category = row[0].strip(), row[1].strip()
        if not text:
            raise _malformed(path, line, "empty text")
        if category not in shown:
            raise _malformed(path, line, f"category {category!r} is not in {categories_path.name}")
        examples.append(Example(text, shown[category]))
    return Dataset(f"banking77-{split}", examples, [shown[c] for c in categories],
                   {v: k for k, v in shown.items()})


# -- SMS spam sets ------------------------------------------------------------------------------

def load_sms_spam(root: str | Path | None = None) -> Dataset:
    """The UCI SMS Spam Collection: TSV `label<TAB>text`, no header, labels spam/ham."""
    path = _file(root, "sms_spam_collection", "SMSSpamCollection")
    examples = []
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        label = label.strip().lower()
        if not tab:
            raise _malformed(path, line_no, "no TAB between label and text")
        if label not in SPAM_LABELS:
            raise _malformed(path, line_no, f"label {label!r} is neither 'spam' nor 'ham'")
        if not text.strip():
            raise _malformed(path, line_no, "empty text")
        examples.append(Example(text.strip(), label))
    return Dataset("sms", examples, list(SPAM_LABELS), {l: l for l in SPAM_LABELS})


_SMISHING_MAP = {"smishing": "spam", "spam": "spam", "ham": "ham"}


def load_smishing(root: str | Path | None = None) -> Dataset:
    """The Mendeley smishing set: CSV `LABEL,TEXT,URL,EMAIL,PHONE`; label case varies. Smishing
    and spam both become "spam", ham stays "ham". Replacement characters are kept as text."""
    path = _file(root, "smishing_mendeley", "Mendeley_Dataset_5971.csv")
    reader = csv.reader(_read_text(path).splitlines(keepends=True))
    header = next(reader, None)
    if not header or [h.strip().upper() for h in header[:2]] != ["LABEL", "TEXT"]:
        raise _malformed(path, 1, f"expected a header starting LABEL,TEXT, got {header!r}")
    examples = []
    for row in reader:
        line = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise _malformed(path, line, f"expected at least 2 fields (LABEL, TEXT), got {len(row)}")
        label = row[0].strip().lower()
        if label not in _SMISHING_MAP:
            raise _malformed(path, line, f"label {row[0]!r} is none of ham, spam, smishing")
        if not row[1].strip():
            raise _malformed(path, line, "empty text")
        examples.append(Example(row[1].strip(), _SMISHING_MAP[label]))
    return Dataset("smishing", examples, list(SPAM_LABELS), {"spam": "spam|smishing", "ham": "ham"})


# -- JSONL --------------------------------------------------------------------------------------

def load_jsonl(path: str | Path, labels: Sequence[str] | None = None) -> Dataset:
    """A JSONL file of {"text": ..., "label": ...} rows. `labels` fixes the label set and its prompt
    order (a row with another label is an error); by default the sorted distinct labels."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"data file {path} does not exist; give a JSONL file of "
                                '{"text": ..., "label": ...} rows or one of ' + ", ".join(NAMED_SETS))
    examples = []
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise _malformed(path, line_no, f"not valid JSON ({exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str):
            raise _malformed(path, line_no, 'expected an object with string fields "text" and "label"')
        if not row["text"].strip() or not row["label"].strip():
            raise _malformed(path, line_no, "empty text or label")
        if labels is not None and row["label"].strip() not in labels:
            raise _malformed(path, line_no, f"label {row['label']!r} is not in the task's labels {list(labels)}")
        examples.append(Example(row["text"].strip(), row["label"].strip()))
    if not examples:
        raise InvalidInputError(f"{path} holds no rows")
    label_list = list(labels) if labels is not None else sorted({e.label for e in examples})
    return Dataset(path.stem, examples, label_list, {l: l for l in label_list})


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


def relabel(dataset: Dataset, labels: Sequence[str]) -> Dataset:
    """The same items under a fixed-label task's label names, in its prompt order: the SMS sets'
    spam/ham become fraud/legit; a set already using `labels` is only put in their order."""
    if set(dataset.labels) == set(labels):
        rename = {label: label for label in labels}
    else:
        rename = _RENAMES.get(frozenset(dataset.labels), {})
        if set(rename.values()) != set(labels):
            raise InvalidInputError(f"data set {dataset.name} has the labels {dataset.labels}; the task needs "
                                    f"{list(labels)} (or spam/ham, read as fraud/legit)")
    return Dataset(dataset.name, [Example(e.text, rename[e.label]) for e in dataset.examples], list(labels),
                   {rename[k]: v for k, v in dataset.source_labels.items()})


# -- splits -------------------------------------------------------------------------------------

def split(examples: Sequence[Example], sizes: Sequence[float | int], seed: int = 0,
          stratify: bool = True, dedupe: bool = True) -> list[list[Example]]:
    """Disjoint parts of `examples`, deterministic for a seed.

    With `dedupe` (the default) repeated texts are dropped first (the first occurrence stays),
    so no text can land in two parts: the SMS collection, for one, repeats some messages.

    `sizes` are counts (ints) or shares of the whole (floats in (0, 1]); they may sum to less
    than the whole (the rest is unused). With `stratify`, every part keeps the label shares of
    the whole (up to rounding): each label's items are shuffled and spread evenly over one
    random order, which is then cut into consecutive parts.
    """
    if dedupe:
        seen: set[str] = set()
        examples = [e for e in examples if not (e.text in seen or seen.add(e.text))]
    n = len(examples)
    counts = []
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
            raise InvalidInputError(f"split sizes must be positive counts or shares, got {size!r}")
        counts.append(int(size) if isinstance(size, int) else int(round(size * n)))
    if sum(counts) > n:
        raise InvalidInputError(f"split sizes {list(sizes)} need {sum(counts)} examples; only {n} exist")
    rng = np.random.default_rng(seed)
    if stratify:
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, example in enumerate(examples):
            by_label[example.label].append(i)
        keys = np.empty(n)
        for label in sorted(by_label):
            members = np.array(by_label[label])
            rng.shuffle(members)
            # Evenly spaced positions in [0, 1) with jitter: every prefix of the order has about
            # the label's share of its items.
            keys[members] = (np.arange(members.size) + rng.random(members.size)) / members.size
        order = np.argsort(keys, kind="stable")
    else:
        order = rng.permutation(n)
    parts, start = [], 0
    for count in counts:
        parts.append([examples[i] for i in order[start:start + count]])
        start += count
    return parts
