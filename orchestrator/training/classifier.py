"""`train_classifier`: a local text classifier trained on the CPU from labelled rows, saved as a
versioned artifact (see `artifacts`).

Methods:
  frozen    a logistic-regression head on the base encoder's frozen embeddings; the regularisation
            strength is chosen on the held-out split (seconds to a few minutes)
  finetune  the encoder fine-tuned with a classification head (`finetune.py`); the head starts from
            the frozen fit and learns faster than the encoder, which is what keeps 77 labels from
            underfitting
  auto      frozen first, then a fine-tune in the time left; the better on the held-out split is kept

Every method ends with a temperature fitted on the held-out split (folded into the head), and
reports accuracy, AUROC of confidence for correctness and ECE there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agents.backends.encoder import LinearHead, fit_linear_head
from agents.errors import InvalidInputError

from orchestrator.core.labelled import Dataset, Example, split
from orchestrator.training.artifacts import Manifest, data_hash, save_artifact
from orchestrator.training.encoders import DEFAULT_BASE, base_ref, encoder_path, load_embedder
from orchestrator.training.quality import fit_temperature, quality

__all__ = ["Method", "TrainResult", "train_classifier", "evaluate_artifact_on"]

Method = Literal["frozen", "finetune", "auto"]
C_GRID = (1.0, 4.0, 16.0, 64.0)
MIN_PER_LABEL = 2


@dataclass
class TrainResult:
    manifest: Manifest
    heldout: dict[str, Any]
    test: dict[str, Any] | None
    tried: list[dict[str, Any]]


def _embed_cached(embedder, texts: list[str], cache_dir: Path, key: str) -> np.ndarray:
    """Embeddings of `texts`, cached by encoder and content: re-running a training embeds nothing."""
    digest = hashlib.sha256((key + "\n" + "\n".join(texts)).encode()).hexdigest()[:20]
    path = cache_dir / f"{digest}.npy"
    if path.is_file():
        return np.load(path)
    vectors = embedder.embed(texts).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def _check(dataset: Dataset) -> None:
    counts: dict[str, int] = {}
    for e in dataset.examples:
        counts[e.label] = counts.get(e.label, 0) + 1
    few = sorted(label for label in dataset.labels if counts.get(label, 0) < MIN_PER_LABEL)
    if len(dataset.labels) < 2 or few:
        raise InvalidInputError(f"training needs at least {MIN_PER_LABEL} rows of each of at least two labels; "
                                f"too few rows of {few or dataset.labels} in {dataset.name}")


def train_classifier(data_dir: Path, task: str, dataset: Dataset, *, method: Method = "auto",
                     base: str = DEFAULT_BASE, max_minutes: float = 20.0, threads: int = 2,
                     heldout_share: float = 0.1, seed: int = 0, test: Dataset | None = None,
                     epochs: int = 4, progress: bool = True, log=print) -> TrainResult:
    """Train on `dataset` (a stratified `heldout_share` of it held out), save the artifact, and
    return its manifest with the held-out report (and one on `test`, when given)."""
    import torch

    if method not in ("frozen", "finetune", "auto"):
        raise InvalidInputError(f"unknown training method {method!r}; use frozen, finetune or auto")
    if max_minutes <= 0:
        raise InvalidInputError(f"--max-minutes must be positive, got {max_minutes}")
    _check(dataset)
    torch.set_num_threads(threads)
    started = time.perf_counter()
    deadline = started + max_minutes * 60
    data_dir = Path(data_dir)
    labels = list(dataset.labels)
    n_held = max(len(labels), int(round(heldout_share * len(dataset))))
    held, fit = split(dataset.examples, [n_held, len({e.text for e in dataset.examples}) - n_held], seed=seed)
    ref = base_ref(base, data_dir)
    embedder = load_embedder(encoder_path(base, data_dir), data_dir)
    cache_dir = data_dir / "trained" / ".embeddings"
    vec = lambda rows: _embed_cached(embedder, [e.text for e in rows], cache_dir, ref["sha256"])  # noqa: E731
    x_fit, x_held = vec(fit), vec(held)
    y_fit, y_held = [e.label for e in fit], np.array([labels.index(e.label) for e in held])

    tried: list[dict[str, Any]] = []
    best_c, best_head, best_acc = None, None, -1.0
    for c in C_GRID:
        head = fit_linear_head(x_fit, y_fit, labels, c=c)
        acc = float((head.predict_proba(x_held).argmax(1) == y_held).mean())
        tried.append({"method": "frozen", "c": c, "heldout_accuracy": round(acc, 4)})
        log(f"frozen head C={c:g}: held-out accuracy {acc:.4f}")
        if acc > best_acc:
            best_c, best_head, best_acc = c, head, acc
        if time.perf_counter() > deadline:
            break
    chosen = {"method": "frozen", "head": best_head, "encoder": None, "accuracy": best_acc,
              "recipe": {"c": best_c}}
    if method in ("finetune", "auto"):
        from orchestrator.training.finetune import finetune

        left = (deadline - time.perf_counter()) / 60
        if left < 0.5 and method == "auto":
            log("no time left for a fine-tune; keeping the frozen head")
        else:
            tuned = finetune(encoder_path(base, data_dir), best_head, fit, held, labels, max_minutes=left,
                             epochs=epochs, seed=seed, progress=progress, log=log)
            tried.append({"method": "finetune", **tuned["recipe"], "heldout_accuracy": round(tuned["accuracy"], 4)})
            if method == "finetune" or tuned["accuracy"] > best_acc:
                chosen = {"method": "finetune", **tuned}

    head: LinearHead = chosen["head"]
    if chosen["encoder"] is not None:  # held-out embeddings from the tuned encoder
        x_held = chosen["embed"]([e.text for e in held])
    probs = head.predict_proba(x_held)
    temperature = fit_temperature(np.log(np.clip(probs, 1e-12, 1)), y_held)
    head = LinearHead(head.labels, head.coef / temperature, head.intercept / temperature)
    heldout = {"n": len(held), **quality(head.predict_proba(x_held), y_held), "temperature": round(temperature, 4)}
    train_seconds = time.perf_counter() - started
    recipe = {"method": chosen["method"], **chosen["recipe"], "base": ref["name"], "threads": threads,
              "heldout_share": heldout_share, "seed": seed, "fit_rows": len(fit), "temperature": round(temperature, 4)}

    def write(folder: Path) -> None:
        head.save(folder / "head.npz")
        if chosen["encoder"] is not None:
            chosen["encoder"].save(str(folder / "encoder"))

    manifest = save_artifact(data_dir, kind="classifier", task=task, labels=labels, base_model=ref,
                             data_hash_hex=data_hash((e.text, e.label) for e in dataset.examples), write=write,
                             recipe=recipe, train_seconds=train_seconds, heldout=heldout)
    report = evaluate_artifact_on(manifest, test, data_dir) if test is not None else None
    return TrainResult(manifest=manifest, heldout=heldout, test=report, tried=tried)


def evaluate_artifact_on(manifest: Manifest, dataset: Dataset, data_dir: Path) -> dict[str, Any]:
    """Accuracy, AUROC, ECE and ms/item of a saved artifact on `dataset` (batched embedding)."""
    from orchestrator.training.serving import load_trained

    if list(dataset.labels) != manifest.labels:
        raise InvalidInputError(f"{dataset.name} has the labels {dataset.labels[:5]}..., the artifact "
                                f"{manifest.id} was trained for {manifest.labels[:5]}...")
    backend = load_trained(manifest, data_dir)
    texts = [e.text for e in dataset.examples]
    gold = np.array([manifest.labels.index(e.label) for e in dataset.examples])
    started = time.perf_counter()
    probs = backend.head.predict_proba(backend.embed(texts))
    ms = (time.perf_counter() - started) * 1000 / max(1, len(texts))
    predicted = probs.argmax(axis=1)
    recall = {label: round(float((predicted[gold == i] == i).mean()), 4)
              for i, label in enumerate(manifest.labels) if (gold == i).any()}
    return {"n": len(texts), **quality(probs, gold), "recall": recall, "ms_per_item_batched": round(ms, 2)}


def examples_of(rows: Sequence[tuple[str, str]]) -> list[Example]:
    return [Example(text, label) for text, label in rows]
