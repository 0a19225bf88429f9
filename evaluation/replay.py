"""Evaluation data and tier outputs for `cascade eval`, each tier run once per item and cached.

Replay: every tier's output on an item (every label's log-probability, tokens in and out,
milliseconds) is stored on disk, keyed by the model file's hash, the prompt version, the label set,
the demonstration pool and the item's text hash (`label_scoring.LogprobCache` with three extra
columns). A re-run with other policies, thresholds or prices replays the same outputs and loads no
model; an interrupted run resumes. Item embeddings (for retrieved demonstrations and the
prompt-only router) are cached the same way.

JSONL data, one object per line:
  classify: {"text": "...", "label": "..."}; the label set is the distinct labels, sorted.
  fraud:    {"text": "...", "label": "fraud" | "legit"} ("spam" / "ham" are read as fraud / legit).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents import classify as classification
from agents.errors import InvalidInputError

from orchestrator.calibration.fitting import labels_id
from evaluation.datasets import (
    NAMED_SETS,
    Dataset,
    Example,
    load_jsonl,
    load_named,
    relabel,
    split,
)
from orchestrator.calibration.label_scoring import LogprobCache
from orchestrator.core.tasks import TASKS

__all__ = ["EVAL_TASKS", "VERIFY_INSTRUCTION", "EvalSplits", "RecordingScorer", "TierSpec", "cached_records",
           "check_jsonl", "embed_cached", "eval_splits", "fit_test_indices", "item_key", "jsonl_objects", "load_eval_data",
           "nearest_demonstrations", "run_tier"]

EVAL_TASKS = ("classify", "fraud")
_FRAUD_READINGS = {"fraud", "legit", "spam", "ham"}
# AutoMix-style self-verification: the small model judges its own answer, scored yes/no from its logits.
VERIFY_INSTRUCTION = ("You check a classifier's answer. Read the text and the proposed label, and say whether the "
                      "label is correct for the text.")
VERIFY_LABELS = ["yes", "no"]
VERIFY_PROMPT_VERSION = "verify-v1"
DUPLICATE_SIMILARITY = 0.97  # as the example store: a near-duplicate is stored (and shown) once


# -- data -----------------------------------------------------------------------------------------

def jsonl_objects(path: Path, expected: str) -> Iterator[tuple[str, dict]]:
    """(where, row) for each non-blank line of a JSONL data file, `where` naming the file and row. A
    missing or empty file, a line that is not JSON, or a row that is not an object is an
    InvalidInputError that says so and shows the `expected` row shape."""
    if not path.is_file():
        raise InvalidInputError(f"data file {path} does not exist; give a JSONL file of {expected} rows")
    rows = 0
    for row_no, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        rows += 1
        where = f"{path}, row {row_no}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"{where}: not valid JSON ({exc}); each line must be {expected}") from None
        if not isinstance(row, dict):
            raise InvalidInputError(f"{where}: expected a JSON object {expected}, got {type(row).__name__}")
        yield where, row
    if not rows:
        raise InvalidInputError(f"{path} is empty; give one {expected} object per line")


def check_jsonl(path: Path, task: str) -> None:
    """Check every row of a JSONL file for `task` before loading it, naming the row and the field."""
    if not path.is_file():
        raise InvalidInputError(f"data file {path} does not exist; give a JSONL file or one of {', '.join(NAMED_SETS)}")
    expected = '{"text": "...", "label": "fraud" | "legit"}' if task == "fraud" else '{"text": "...", "label": "..."}'
    for where, row in jsonl_objects(path, expected):
        for field in ("text", "label"):
            if field not in row:
                raise InvalidInputError(f"{where}: missing field \"{field}\" (the row has {sorted(row) or 'no fields'}); "
                                        f"{task} rows are {expected}")
            if not isinstance(row[field], str):
                raise InvalidInputError(f"{where}: field \"{field}\" must be a string, got {type(row[field]).__name__}")
            if not row[field].strip():
                raise InvalidInputError(f"{where}: field \"{field}\" is empty")
        if task == "fraud" and row["label"].strip().lower() not in _FRAUD_READINGS:
            raise InvalidInputError(f"{where}: field \"label\" is {row['label']!r}; fraud rows are labelled fraud or "
                                    "legit (spam or ham are read as fraud or legit)")


def load_eval_data(task: str, data: str, part: str = "train", root: str | Path | None = None) -> Dataset:
    """A named set (banking77 for classify; sms or smishing for either task) or a JSONL file, under
    the task's labels (SMS spam/ham read as fraud/legit for the fraud task)."""
    if task not in EVAL_TASKS:
        raise InvalidInputError(f"cascade eval runs the label tasks {', '.join(EVAL_TASKS)}, not {task!r}")
    if task == "fraud" and data == "banking77":
        raise InvalidInputError("banking77 has no fraud labels; evaluate fraud on sms, smishing or a JSONL file")
    if data in NAMED_SETS:
        dataset = load_named(data, part, root)
    else:
        path = Path(data).expanduser()
        check_jsonl(path, task)
        dataset = load_jsonl(path)
        if task == "fraud":  # fraud/legit or spam/ham, any case
            dataset = Dataset(dataset.name, [Example(e.text, e.label.lower()) for e in dataset.examples],
                              sorted({e.label.lower() for e in dataset.examples}))
    if task == "fraud":
        dataset = relabel(dataset, TASKS["fraud"].labels)
    if len(dataset.labels) < 2:
        raise InvalidInputError(f"{data} has a single label {dataset.labels}; evaluation needs at least two")
    return dataset


@dataclass(frozen=True)
class EvalSplits:
    name: str
    labels: list[str]
    fit: list[Example]  # calibration and the prompt-only router learn here
    test: list[Example]  # every policy is measured here
    pool: list[Example]  # demonstrations are retrieved from here only

    def gold(self, examples: Sequence[Example]) -> np.ndarray:
        position = {label: i for i, label in enumerate(self.labels)}
        return np.array([position[e.label] for e in examples], dtype=np.int64)


def eval_splits(task: str, data: str, n: int, fit_size: int, pool_size: int, seed: int = 0,
                root: str | Path | None = None) -> EvalSplits:
    """Disjoint, stratified fit, test and demonstration-pool parts (repeated texts dropped first).
    banking77 tests on its test file and fits on its train file. The pool takes up to `pool_size`
    of what is left."""
    if n < 1 or fit_size < 1:
        raise InvalidInputError(f"--n and --fit-size must be >= 1, got {n} and {fit_size}")
    if data == "banking77":
        train, test_set = load_eval_data(task, data, "train", root), load_eval_data(task, data, "test", root)
        fit, *pool = split(train.examples, [fit_size] + ([min(pool_size, len(train) - fit_size)] if pool_size else []),
                           seed=seed)
        pool = pool[0] if pool else []
        seen = {e.text for e in fit + pool}  # a test text also in train stays out
        [test] = split([e for e in test_set.examples if e.text not in seen], [n], seed=seed)
        return EvalSplits("banking77", train.labels, fit, test, pool)
    dataset = load_eval_data(task, data, root=root)
    unique = len({e.text for e in dataset.examples})
    left = unique - n - fit_size
    if left < 0:
        raise InvalidInputError(f"{data} has {unique} distinct texts; --n {n} plus --fit-size {fit_size} need more")
    sizes = [fit_size, n] + ([min(pool_size, left)] if pool_size and left else [])
    fit, test, *pool = split(dataset.examples, sizes, seed=seed)
    return EvalSplits(Path(dataset.name).stem, dataset.labels, fit, test, pool[0] if pool else [])


# -- cached model outputs -------------------------------------------------------------------------

@dataclass
class TierSpec:
    """One tier for replay: a name, its model file's hash, and a factory loading its backend (called
    only if an item is missing from the cache). `calls` counts model calls made."""

    name: str
    model_hash: str
    load: Callable[[], object]
    calls: int = 0
    _backend: object = None

    def backend(self):
        if self._backend is None:
            self._backend = self.load()
        return self._backend


def _answer_tokens(backend, label: str) -> int:
    """Tokens a generating model would emit for the answer: the label, then end-of-turn."""
    llm = getattr(backend, "llm", None)
    if llm is None:
        return len(label.split()) + 1
    return len(llm.tokenize(label.encode("utf-8"), add_bos=False, special=False)) + 1


def run_tier(tier: TierSpec, keys: Sequence[str], items: Sequence[str], labels: Sequence[str], instruction: str,
             cache_file: Path, progress: Callable[[str, int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Every item's label log-probs [n, k], tokens in and out and milliseconds, from the cache or
    by scoring `items[i]` (the per-item prompt block) once; `keys[i]` identifies the item in the cache
    (its text, or its text and the answer judged). Items too long for the model get NaN rows."""
    k = len(labels)
    cache = LogprobCache(cache_file, k + 3)
    rows = np.full((len(items), k + 3), np.nan)
    todo = []
    for i, key in enumerate(keys):
        row = cache.get(key)
        if row is None:
            todo.append(i)
        else:
            rows[i] = row
    prompt = classification.messages(list(labels), instruction=instruction)
    try:
        for done, i in enumerate(todo, start=1):
            backend = tier.backend()
            started = time.perf_counter()
            try:
                scored = backend.score(prompt, items[i], list(labels))
            except InvalidInputError:  # longer than the context: stays NaN, counted as skipped
                continue
            finally:
                tier.calls += 1
            ms = (time.perf_counter() - started) * 1000
            logprobs = np.asarray(scored.logprobs, dtype=float)
            rows[i] = [*logprobs, scored.tokens_in, _answer_tokens(backend, labels[int(logprobs.argmax())]), ms]
            cache.put(keys[i], rows[i])
            if progress:
                progress(tier.name, done, len(todo))
    finally:
        cache.save()
    return {"logprobs": rows[:, :k], "tokens_in": rows[:, k], "tokens_out": rows[:, k + 1], "ms": rows[:, k + 2]}


def embed_cached(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], cache_file: Path,
                 dim: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm embeddings [n, dim] and per-item milliseconds, embedding only texts not cached."""
    cache = LogprobCache(cache_file, dim + 1, save_every=1000)
    out = np.full((len(texts), dim + 1), np.nan)
    for i, text in enumerate(texts):
        row = cache.get(text)
        if row is not None:
            out[i] = row
    todo = [i for i in range(len(texts)) if np.isnan(out[i, 0])]
    for start in range(0, len(todo), 64):
        batch = todo[start:start + 64]
        started = time.perf_counter()
        vectors = np.asarray(embed([texts[i] for i in batch]), dtype=float)
        ms = (time.perf_counter() - started) * 1000 / len(batch)  # per item, as the batch shares the work
        for i, vector in zip(batch, vectors):
            out[i] = [*vector, ms]
            cache.put(texts[i], out[i])
    cache.save()
    return out[:, :dim], out[:, dim]


# -- generated outputs (document QA, contract review): one JSON record per item ---------------------

def fit_test_indices(usable: np.ndarray, n_fit: int, nothing_left: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the usable fit and test items (the items are the fit split, then the test split);
    `nothing_left` is the error when no test item is usable."""
    is_fit = np.arange(len(usable)) < n_fit
    fit_idx, test_idx = np.flatnonzero(is_fit & usable), np.flatnonzero(~is_fit & usable)
    if len(test_idx) == 0:
        raise InvalidInputError(nothing_left)
    return fit_idx, test_idx


def item_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def cached_records(tier: TierSpec, file: Path, keys: list[str], work, progress) -> list[dict]:
    """Each key's record from `file`, or from `work(backend, i)` (one model call), saved as it goes."""
    rows = json.loads(file.read_text()) if file.is_file() else {}
    todo = [i for i, k in enumerate(keys) if k not in rows]
    for done, i in enumerate(todo, start=1):
        backend = tier.backend()
        started = time.perf_counter()
        try:
            record = work(backend, i)
        except InvalidInputError as exc:  # beyond the context: skipped, never crashes the run
            record = {"status": "skipped", "reason": str(exc)}
        finally:
            tier.calls += 1
        rows[keys[i]] = {**record, "ms": (time.perf_counter() - started) * 1000}
        file.with_suffix(".tmp").write_text(json.dumps(rows))
        file.with_suffix(".tmp").replace(file)  # whole or not at all: an interrupted run resumes
        if progress:
            progress(tier.name, done, len(todo))
    return [rows[k] for k in keys]


class RecordingScorer:
    """A backend as a yes/no judge sees it, keeping the last Scored (for its tokens)."""

    def __init__(self, backend) -> None:
        self.backend, self.last = backend, None

    def score(self, messages, item, continuations):
        self.last = self.backend.score(messages, item, continuations)
        return self.last


def nearest_demonstrations(vectors: np.ndarray, pool_vectors: np.ndarray | None, pool: Sequence[Example],
                           k: int) -> list[list[tuple[str, str]]]:
    """Per item, its k most similar pool examples as (text, label), nearest last (next to the item,
    the cascade's default order); pool near-duplicates count once, as in the example store."""
    if k == 0 or not len(pool):
        return [[] for _ in range(len(vectors))]
    keep: list[int] = []
    for i, v in enumerate(pool_vectors):
        if not keep or float(np.max(pool_vectors[keep] @ v)) < DUPLICATE_SIMILARITY:
            keep.append(i)
    sims = vectors @ pool_vectors[keep].T
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [[(pool[keep[j]].text, pool[keep[j]].label) for j in row[::-1]] for row in nearest]


def cache_name(data: str, tier: TierSpec, prompt_version: str, labels: Sequence[str], pool_id: str) -> str:
    return f"{data}-{tier.name}-{tier.model_hash[:12]}-{prompt_version}-{pool_id}-{labels_id(list(labels))}.npz"
