"""Scoring labelled items with the tier-1 model for calibration: every label's log-probability
per item, exactly as the cascade's tier 1 sees the item, with an on-disk cache so an interrupted
collection resumes and a re-fit costs no model calls."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agents.classify import SYSTEM, item_block, messages, validate_labels
from agents.errors import InvalidInputError

__all__ = ["LogprobCache", "collect_label_logprobs"]


class LogprobCache:
    """Label log-probabilities per item text, in one .npz file per (data, model, prompt, labels).

    Re-running a calibration with another policy or calibrator costs no model calls; an
    interrupted collection resumes where it stopped (the file is saved every `save_every` items).
    """

    def __init__(self, path: Path, n_labels: int, save_every: int = 50) -> None:
        self.path, self.n_labels, self.save_every = Path(path), n_labels, save_every
        self._rows: dict[str, np.ndarray] = {}
        self._unsaved = 0
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                if z["rows"].ndim == 2 and z["rows"].shape[1] == n_labels:
                    self._rows = {str(k): r for k, r in zip(z["keys"], z["rows"])}

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]

    def get(self, text: str) -> np.ndarray | None:
        return self._rows.get(self.key(text))

    def put(self, text: str, row: np.ndarray) -> None:
        self._rows[self.key(text)] = np.asarray(row, dtype=float)
        self._unsaved += 1
        if self._unsaved >= self.save_every:
            self.save()

    def save(self) -> None:
        if not self._unsaved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        keys = np.array(list(self._rows), dtype=str)
        rows = np.array(list(self._rows.values()), dtype=float).reshape(len(keys), self.n_labels)
        np.savez(tmp, keys=keys, rows=rows)
        os.replace(tmp, self.path)
        self._unsaved = 0


def collect_label_logprobs(backend, examples: Sequence, labels: Sequence[str], progress: bool = True,
                           cache: LogprobCache | None = None, description: str = "scoring",
                           demonstrations: Callable[[str], list[tuple[str, str]]] | None = None,
                           instruction: str = SYSTEM) -> np.ndarray:
    """Score every example's text against every label: log-probs of shape [n, len(labels)].

    `backend` has `score(messages, item, labels)` (the llama.cpp backend); each item is
    `agents.classify.item_block(text, demonstrations(text))`, exactly what the cascade's tier 1
    sees (prompt version `agents.classify.prompt_version(...)` of those demonstrations), under the
    task's `instruction` line. The prompt and the label list are the same for every item, so the
    backend's cached prefix is reused. An item the model cannot take (longer than its context) gets a row of NaN and a warning.
    """
    labels = validate_labels(list(labels))
    prompt = messages(labels, instruction=instruction)
    out = np.full((len(examples), len(labels)), np.nan)
    todo = []
    for i, example in enumerate(examples):
        row = cache.get(example.text) if cache is not None else None
        if row is not None:
            out[i] = row
        else:
            todo.append(i)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not progress or not todo, transient=True) as bar:
            job = bar.add_task(description, total=len(todo))
            for i in todo:
                try:
                    text = examples[i].text
                    shown = demonstrations(text) if demonstrations is not None else []
                    scored = backend.score(prompt, item_block(text, shown), labels)
                except InvalidInputError as exc:
                    warnings.warn(f"item {i} skipped: {exc}", RuntimeWarning, stacklevel=2)
                else:
                    out[i] = scored.logprobs
                    if cache is not None:
                        cache.put(examples[i].text, out[i])
                bar.advance(job)
    finally:
        if cache is not None:
            cache.save()
    return out
