"""Base encoders compared on banking77 with a frozen logistic-regression head, and the latency of a
trained artifact, on one torch thread.

    python -m evaluation.benchmarks.encoders bases --train 3000 --test 1000
    python -m evaluation.benchmarks.encoders artifact DATA_DIR/trained/classifier/classify/<id>
    python -m evaluation.benchmarks.encoders threads --latency-items 100

Accuracy and AUROC on a stratified part of banking77's test split; ms/item one by one (median over
`--latency-items` items, each embedded alone) and batched (64 at a time). `threads`: the bundled
MiniLM's ms per item alone on 1 and 2 torch threads, on its own, beside a process that keeps one core
busy, and beside a torch process on its default threads (as a second worker process would be): why
the encoder tier defaults to one thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evaluation.datasets import load_named


def _one_by_one_ms(embed, texts: list[str]) -> float:
    times = []
    for text in texts:
        started = time.perf_counter()
        embed([text])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def compare_bases(bases: list[str], n_train: int, n_test: int, data_dir: Path, latency_items: int = 200,
                  seed: int = 0) -> list[dict]:
    from agents.backends.encoder import fit_linear_head
    from orchestrator.core.labelled import split
    from orchestrator.training.encoders import load_embedder
    from orchestrator.training.quality import quality

    train, test = load_named("banking77", "train"), load_named("banking77", "test")
    [fit] = split(train.examples, [n_train], seed=seed)
    [held] = split(test.examples, [n_test], seed=seed)
    gold = np.array([test.labels.index(e.label) for e in held])
    rows = []
    for base in bases:
        embedder = load_embedder(base, data_dir)
        started = time.perf_counter()
        x_fit = embedder.embed([e.text for e in fit])
        x_test = embedder.embed([e.text for e in held])
        batched_ms = (time.perf_counter() - started) * 1000 / (len(fit) + len(held))
        head = fit_linear_head(x_fit, [e.label for e in fit], train.labels, c=16.0)
        rows.append({"base": base, "train": len(fit), "test": len(held), "dim": int(x_fit.shape[1]),
                     **quality(head.predict_proba(x_test), gold), "ms_per_item_batched": round(batched_ms, 2),
                     "ms_per_item_alone": _one_by_one_ms(embedder.embed, [e.text for e in held[:latency_items]])})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def artifact_latency(path: Path, data_dir: Path, latency_items: int = 300) -> dict:
    from orchestrator.training.artifacts import load_manifest
    from orchestrator.training.serving import load_trained

    manifest = load_manifest(path)
    backend = load_trained(manifest, data_dir)
    test = load_named("banking77", "test")
    texts = [e.text for e in test.examples[:latency_items]]
    embed = backend.embed._embed  # the model itself, not the cache
    started = time.perf_counter()
    embed(texts)
    batched = (time.perf_counter() - started) * 1000 / len(texts)
    return {"artifact": manifest.id, "ms_per_item_alone": _one_by_one_ms(lambda t: backend.head.predict_proba(embed(t)),
                                                                           texts),
            "ms_per_item_batched": round(batched, 2), "items": len(texts)}


def thread_latency(latency_items: int = 100) -> list[dict]:
    import torch

    from agents.retrieval import Embedder

    embedder = Embedder()
    texts = [e.text for e in load_named("banking77", "test").examples[:latency_items]]
    rivals = {"none": None, "python loop (one core)": "while True: pass",
              "torch process on its default threads": "import torch\na = torch.randn(256, 256)\nwhile True: a @ a"}
    rows = []
    for beside, code in rivals.items():
        rival = subprocess.Popen([sys.executable, "-c", code]) if code else None
        try:
            time.sleep(2 if code else 0)  # let the rival start its threads
            for threads in (1, 2):
                torch.set_num_threads(threads)
                embedder.embed(texts[:5])  # warm the thread pool
                rows.append({"torch_threads": threads, "beside": beside,
                             "ms_per_item_alone": _one_by_one_ms(embedder.embed, texts)})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            if rival:
                rival.kill()
                rival.wait()
    return rows


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["bases", "artifact", "threads"])
    parser.add_argument("path", nargs="?")
    parser.add_argument("--bases", default="all-MiniLM-L6-v2,all-mpnet-base-v2")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--latency-items", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from orchestrator.core.config import load_settings

    data_dir = args.data_dir or load_settings().data_dir
    if args.what == "threads":
        thread_latency(args.latency_items)
    elif args.what == "bases":
        compare_bases(args.bases.split(","), args.train, args.test, data_dir, args.latency_items)
    else:
        print(json.dumps(artifact_latency(Path(args.path), data_dir, args.latency_items)))


if __name__ == "__main__":
    main()
