"""Labelled data: `Example` and `Dataset`, a JSONL file of labelled rows, relabelling to a task's
fixed labels, and deterministic stratified splits. What calibration (and training) read; the public
sets' loaders build on it in `evaluation.datasets`.

Every `Dataset` holds examples whose `label` is the label exactly as the model sees it in the prompt,
the ordered label list (keep it identical across items so the prompt prefix is reused), and the
mapping back to the label spelled in the source file. Files are read as untrusted text: undecodable
bytes become U+FFFD, never a crash; a malformed row raises `InvalidInputError` naming the file and row.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agents.errors import InvalidInputError

__all__ = ["SPAM_LABELS", "Dataset", "Example", "load_jsonl", "read_text", "malformed", "relabel", "split"]

SPAM_LABELS = ["spam", "ham"]  # the label set of both SMS sets, in prompt order
# How a data set's labels read as a fixed-label task's: SMS spam is what fraud flagging calls "fraud".
_RENAMES = {frozenset(SPAM_LABELS): {"spam": "fraud", "ham": "legit"}}

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


def read_text(path: Path) -> str:
    # utf-8-sig drops a byte-order mark; errors="replace" turns bad bytes into U+FFFD.
    return path.read_text(encoding="utf-8-sig", errors="replace")


def malformed(path: Path, row: int, problem: str) -> InvalidInputError:
    return InvalidInputError(f"{path}, row {row}: {problem}; fix or remove that row")


# -- JSONL --------------------------------------------------------------------------------------

def load_jsonl(path: str | Path, labels: Sequence[str] | None = None) -> Dataset:
    """A JSONL file of {"text": ..., "label": ...} rows. `labels` fixes the label set and its prompt
    order (a row with another label is an error); by default the sorted distinct labels."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"data file {path} does not exist; give a JSONL file of "
                                '{"text": ..., "label": ...} rows')
    examples = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise malformed(path, line_no, f"not valid JSON ({exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str):
            raise malformed(path, line_no, 'expected an object with string fields "text" and "label"')
        if not row["text"].strip() or not row["label"].strip():
            raise malformed(path, line_no, "empty text or label")
        if labels is not None and row["label"].strip() not in labels:
            raise malformed(path, line_no, f"label {row['label']!r} is not in the task's labels {list(labels)}")
        examples.append(Example(row["text"].strip(), row["label"].strip()))
    if not examples:
        raise InvalidInputError(f"{path} holds no rows")
    label_list = list(labels) if labels is not None else sorted({e.label for e in examples})
    return Dataset(path.stem, examples, label_list, {l: l for l in label_list})


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
