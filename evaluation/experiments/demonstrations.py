"""Issue 8's first experiment: does the small model learn from examples?

`run_demos`: tier 1 (SmolLM2 through the bare LlamaCppBackend, one model load) on a test split with
no demonstrations, k fixed ones, and the k nearest ones retrieved from an ExampleStore seeded with a
disjoint fit split; plus the encoder tier (embeddings + logistic regression on the fit split). The
second experiment, the stream with learning on, is `evaluation.experiments.stream`.

Results are plain dicts (JSON-ready); the CLI (`cascade experiment ...`) prints and saves them.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import classify as classification
from agents.errors import InvalidInputError
from agents.retrieval import Embedder, ExampleStore
from agents.retrieval import Example as StoredExample
from routers.metrics import auroc

from evaluation.datasets import Example, load_banking77, load_sms_spam, split
from orchestrator.core.models import resolve_model_path

__all__ = ["DEMO_SETS", "condition_metrics", "fixed_demonstrations", "demo_splits", "run_demos"]

DEMO_SETS = ("sms", "banking77")
Progress = Callable[[str, int, int], None]  # (stage, done, total)
N_CTX = 4096  # four long SMS demonstrations plus the item fit with room to spare


# -- splits and demonstrations ------------------------------------------------------------------

def demo_splits(data: str, n_fit: int, n_test: int, seed: int = 0,
                root: str | Path | None = None) -> tuple[list[Example], list[Example], list[str]]:
    """(fit, test, labels), disjoint by text. SMS: one stratified split of the deduplicated
    collection. banking77: fit from train.csv (all of it when n_fit covers it), test from test.csv;
    a test text that also occurs in the fit part is dropped."""
    if data == "sms":
        dataset = load_sms_spam(root)
        fit, test = split(dataset.examples, [n_fit, n_test], seed=seed)
        return fit, test, dataset.labels
    if data == "banking77":
        train, test_set = load_banking77("train", root), load_banking77("test", root)
        unique_train = list({e.text: e for e in train.examples}.values())
        fit = unique_train if n_fit >= len(unique_train) else split(unique_train, [n_fit], seed=seed)[0]
        fit_texts = {e.text for e in fit}
        [test] = split([e for e in test_set.examples if e.text not in fit_texts], [n_test], seed=seed)
        return fit, test, train.labels
    raise InvalidInputError(f"unknown data set {data!r} for this experiment; use one of {', '.join(DEMO_SETS)}")


def fixed_demonstrations(fit: Sequence[Example], labels: list[str], k: int, seed: int = 0) -> list[tuple[str, str]]:
    """k labelled examples from the fit split, shown for every item: labels taken in turn (one per
    label while k allows, then round again), each label's examples in a seeded random order."""
    rng = np.random.default_rng(seed)
    pools = {label: [e for e in fit if e.label == label] for label in labels}
    for pool in pools.values():
        rng.shuffle(pool)
    order = [labels[i] for i in rng.permutation(len(labels))]
    chosen: list[tuple[str, str]] = []
    while len(chosen) < k and any(pools.values()):
        for label in order:
            if pools[label] and len(chosen) < k:
                e = pools[label].pop()
                chosen.append((e.text, e.label))
    return chosen


# -- metrics ------------------------------------------------------------------------------------

def _safe_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return auroc(np.clip(scores, 0.0, 1.0), positive)


def condition_metrics(name: str, probs: np.ndarray, gold: np.ndarray, labels: list[str],
                      ms: Sequence[float], retrieval_ms: Sequence[float] = ()) -> dict[str, Any]:
    """Accuracy, AUROC and median time of one condition. `probs` is items x labels (normalised).

    AUROC: for a spam/ham set, of P(spam) against the gold spam label (ranking spam above ham);
    otherwise of the top probability as the confidence that the answer is right. Both are given
    where they apply (`auroc_spam`, `auroc_correct`); `auroc` is the headline one.
    """
    predicted = probs.argmax(axis=1)
    correct = predicted == gold
    result: dict[str, Any] = {
        "condition": name, "n": int(len(gold)), "accuracy": float(correct.mean()),
        "auroc_correct": _safe_auroc(probs.max(axis=1), correct),
        "ms_median": float(statistics.median(ms)) if len(ms) else math.nan,
        "retrieval_ms_median": float(statistics.median(retrieval_ms)) if len(retrieval_ms) else 0.0,
    }
    if "spam" in labels and len(labels) == 2:
        spam = labels.index("spam")
        result["auroc_spam"] = _safe_auroc(probs[:, spam], gold == spam)
        result["auroc"] = result["auroc_spam"]
    else:
        result["auroc"] = result["auroc_correct"]
    return result


def _normalise(logprobs: Sequence[float]) -> np.ndarray:
    lp = np.asarray(logprobs, dtype=float)
    p = np.exp(lp - lp.max())
    return p / p.sum()


# -- experiment 1: demonstrations ---------------------------------------------------------------

def run_demos(data: str = "sms", n_fit: int = 1000, n_test: int = 300, k: int = 4, seed: int = 0,
              model: str = "bundled:smollm2", threads: int | None = None, root: str | Path | None = None,
              data_dir: Path | None = None, embedder: Embedder | None = None,
              conditions: Sequence[str] = ("none", "fixed", "retrieved", "encoder"),
              progress: Progress | None = None) -> dict[str, Any]:
    """Tier-1 accuracy, AUROC and median per-item time with no, fixed and retrieved demonstrations,
    and the encoder tier, fitted and measured on disjoint parts. The example store lives in a
    temporary directory seeded with the fit split only, so no item can retrieve itself."""
    from agents.backends.encoder import EncoderBackend, EncoderOptions
    from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

    fit, test, labels = demo_splits(data, n_fit, n_test, seed, root)
    gold = np.array([labels.index(e.label) for e in test])
    fixed = fixed_demonstrations(fit, labels, k, seed)
    embedder = embedder or Embedder()
    rows: list[dict[str, Any]] = []
    report = lambda stage, i: progress and progress(stage, i, len(test))  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="cascade-demos-") as tmp:
        path = resolve_model_path(model, data_dir or Path(tmp))
        backend = LlamaCppBackend(LlamaCppOptions(model_path=path, n_ctx=N_CTX, n_threads=threads))
        backend.score(classification.messages(labels), classification.item_block("warm up"), labels)
        llm_conditions = [c for c in ("none", "fixed", "retrieved") if c in conditions]
        store = None
        if "retrieved" in llm_conditions:
            store = ExampleStore(path=Path(tmp) / "qdrant", embedder=embedder)
            store.add("experiment", [StoredExample(text=e.text, label=e.label, source=f"{data}:fit") for e in fit])
        for name in llm_conditions:
            probs, ms, retrieval_ms = np.zeros((len(test), len(labels))), [], []
            # Fixed demonstrations sit in the prompt prefix (evaluated once); retrieved ones differ
            # per item and go in the item block after the instructions, as in Cascade.run.
            prefix = classification.messages(labels, classification.item_block(classification.ITEM, fixed)) \
                if name == "fixed" else classification.messages(labels)
            for i, e in enumerate(test):
                started = time.perf_counter()
                if name == "retrieved":
                    nearest = store.nearest("experiment", e.text, k, labels=labels, order="nearest_last")
                    retrieval_ms.append((time.perf_counter() - started) * 1000)
                    item = classification.item_block(e.text, [(d.text, d.label) for d in nearest])
                else:
                    item = e.text if name == "fixed" else classification.item_block(e.text)
                probs[i] = _normalise(backend.score(prefix, item, labels).logprobs)
                ms.append((time.perf_counter() - started) * 1000)
                report(name, i + 1)
            rows.append(condition_metrics(name, probs, gold, labels, ms, retrieval_ms))
        if store is not None:
            store.close()
        if "encoder" in conditions:
            head = EncoderBackend(EncoderOptions(examples=[StoredExample(text=e.text, label=e.label, source="fit")
                                                           for e in fit], min_per_label=1), embedder)
            probs, ms = np.zeros((len(test), len(labels))), []
            for i, e in enumerate(test):
                started = time.perf_counter()
                p = head.predict_proba(e.text, labels)
                probs[i] = [p[label] for label in labels]
                ms.append((time.perf_counter() - started) * 1000)
                report("encoder", i + 1)
            rows.append(condition_metrics("encoder", probs, gold, labels, ms))
    return {"data": data, "n_fit": len(fit), "n_test": len(test), "k": k, "seed": seed, "model": path.name,
            "labels": len(labels), "test_positive_share": _share(test, "spam") if "spam" in labels else None,
            "fixed_demonstrations": [{"text": t[:80], "label": l} for t, l in fixed], "rows": rows}


def _share(examples: Sequence[Example], label: str) -> float:
    return sum(e.label == label for e in examples) / max(len(examples), 1)
