"""The encoder tier at run time: which head answers a (task, label set), and how it keeps learning.

For each (task, labels) the tier serves, in order:
  1. the newest trained artifact for exactly that task and label list (`cascade train`), or
  2. a head fitted here on frozen embeddings of the tier's examples file and the task's example store
     (only examples labelled with one of the asked labels).
A fitted head is refitted in a background thread when examples enter the store (resolved escalations,
reviewer labels): requests keep using the previous head until the new one is ready. Confidential
items never reach the store (`Cascade.run` stores nothing under a policy with keep_examples false),
so they never reach a head. Embeddings of the store are read back from it, not recomputed, when the
tier's base encoder is the store's.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import cache
from pathlib import Path

import numpy as np

from agents.backends.encoder import HeadBackend, LinearHead, fit_linear_head
from agents.errors import ConfigError, InvalidOutputError, ModelFileError
from agents.retrieval import Example, ExampleStore

from orchestrator.training.artifacts import Manifest, newest
from orchestrator.training.encoders import DEFAULT_BASE, base_ref, load_embedder

__all__ = ["CachedEmbed", "EncoderTierRuntime", "load_trained"]


class CachedEmbed:
    """text -> embedding with a bounded cache, so a batch job can embed its items in one call
    (`prefetch`) and each item's run then finds its vector."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], size: int = 4096, threads: int | None = None) -> None:
        self._embed, self._size, self.threads = embed, size, threads
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def prefetch(self, texts: list[str]) -> None:
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for text, vector in zip(todo, self._embed_now(todo)):
                self._put(text, vector)

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            found = [self._cache.get(t) for t in texts]
        if any(v is None for v in found):
            missing = [t for t, v in zip(texts, found) if v is None]
            vectors = dict(zip(missing, self._embed_now(missing)))
            found = [v if v is not None else vectors[t] for t, v in zip(texts, found)]
        return np.stack(found)

    def _embed_now(self, texts: list[str]) -> np.ndarray:
        if self.threads:
            import torch

            # torch's default (every core) stalls when another process holds a core: beside a busy
            # process, 2 threads took 262 ms per item and 1 thread 20 ms (docs/benchmarks.md)
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
        return self._embed(texts)

    def _put(self, text: str, vector: np.ndarray) -> None:
        with self._lock:
            self._cache[text] = vector
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)


def load_trained(manifest: Manifest, data_dir: Path, threads: int | None = None) -> HeadBackend:
    """A backend serving a trained artifact; a damaged one is a ModelFileError saying what to do."""
    folder = manifest.path
    fix = f"delete {folder} and run `cascade train` again"
    head = LinearHead.load(folder / "head.npz")
    if head.labels != manifest.labels:
        raise ModelFileError(f"trained-model artifact {folder}: its head's labels differ from its manifest's; {fix}")
    if (folder / "encoder").is_dir():
        try:
            embedder = load_embedder(folder / "encoder", data_dir)
        except Exception as exc:  # transformers raises many kinds on a damaged directory
            raise ModelFileError(f"trained-model artifact {folder}: its encoder does not load ({exc}); {fix}") from None
    else:
        installed = base_ref(manifest.base_model.name, data_dir)
        if installed["sha256"] != manifest.base_model.sha256:
            raise ModelFileError(f"trained-model artifact {folder} was trained on {manifest.base_model.name} with "
                                 f"weights {manifest.base_model.sha256[:12]}; the installed ones differ; {fix}")
        embedder = load_embedder(manifest.base_model.name, data_dir)
    return HeadBackend(head, CachedEmbed(embedder.embed, threads=threads), model_id=f"encoder:{manifest.id}",
                       head_id=manifest.id)


class EncoderTierRuntime:
    """The heads one encoder tier serves, by (task, labels), and their background refits."""

    def __init__(self, *, data_dir: Path, base: str = DEFAULT_BASE,
                 examples: list[Example] | Callable[[], list[Example]] | None = None,
                 store: Callable[[], ExampleStore | None] = lambda: None, use_store: bool = True,
                 use_trained: bool = True, c: float = 4.0, min_per_label: int = 2,
                 store_embeds_like_base: bool | None = None, heads: dict[str, Path] | None = None,
                 threads: int | None = None) -> None:
        self.data_dir, self.base, self.threads = Path(data_dir), base, threads
        self._file_examples = examples if callable(examples) else (lambda: list(examples or []))
        self._store, self.use_store, self.use_trained = store, use_store, use_trained
        self.c, self.min_per_label = c, min_per_label
        self.heads = {task: Path(path) for task, path in (heads or {}).items()}  # packaged heads by task
        # The example store embeds with all-MiniLM-L6-v2: its stored vectors fit a head of that base only.
        self._store_vectors = base == DEFAULT_BASE if store_embeds_like_base is None else store_embeds_like_base
        self._heads: dict[tuple[str, tuple[str, ...]], HeadBackend] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder-refit")
        self._queued: set[tuple[str, tuple[str, ...]]] = set()  # refits submitted and not yet started
        self._futures: list[Future] = []
        self._embed: CachedEmbed | None = None
        self.refits = 0

    @property
    def embed(self) -> CachedEmbed:
        if self._embed is None:
            self._embed = CachedEmbed(load_embedder(self.base, self.data_dir).embed, threads=self.threads)
        return self._embed

    def backend_for(self, task: str, labels: list[str]) -> HeadBackend:
        key = (task, tuple(labels))
        with self._lock:
            if key in self._heads:
                return self._heads[key]
        backend = self._resolve(task, list(labels))
        with self._lock:
            return self._heads.setdefault(key, backend)

    def prefetch(self, task: str, labels: list[str], texts: list[str]) -> None:
        """Embed a batch of items in one call before they are run one by one."""
        backend = self.backend_for(task, labels)
        if isinstance(backend.embed, CachedEmbed):
            backend.embed.prefetch(texts)

    def examples_added(self, task: str) -> None:
        """New examples in the task's store: refit its fitted heads in the background (a trained
        artifact stays as it is until `cascade train` makes a new one)."""
        with self._lock:
            keys = [k for k, b in self._heads.items() if k[0] == task and b.file_hash.startswith("frozen:")]
            for key in keys:
                # A queued refit will read the store as it is when it starts; a running one may have
                # read it before this example arrived, so another is queued behind it.
                if key not in self._queued:
                    self._queued.add(key)
                    self._futures = [f for f in self._futures if not f.done()] + [
                        self._executor.submit(self._refit, key)]

    def wait(self, timeout: float | None = None) -> None:
        """Block until the refits asked for so far are done (tests, benchmarks, shutdown)."""
        with self._lock:
            futures = list(self._futures)
        wait(futures, timeout=timeout)
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _refit(self, key: tuple[str, tuple[str, ...]]) -> None:
        with self._lock:
            self._queued.discard(key)
        try:
            backend = self._fit(key[0], list(key[1]))
        except InvalidOutputError:
            return
        with self._lock:
            self._heads[key] = backend
            self.refits += 1

    def _resolve(self, task: str, labels: list[str]) -> HeadBackend:
        if self.use_trained:
            manifest = newest(self.data_dir, "classifier", task, labels)
            if manifest is not None:
                return load_trained(manifest, self.data_dir, self.threads)
        if task in self.heads:
            head_file = self.heads[task]
            _check_head_base(head_file, self.base)
            head = LinearHead.load(head_file)
            if head.labels == list(labels):  # a packaged head serves its own label list only
                digest = hashlib.sha256(head_file.read_bytes()).hexdigest()[:16]
                return HeadBackend(head, self.embed, model_id=f"encoder:{self.base}+{head_file.parent.name}",
                                   head_id=f"packaged:{digest}")
        return self._fit(task, labels)

    def _fit(self, task: str, labels: list[str]) -> HeadBackend:
        wanted = set(labels)
        rows = [(e.text, e.label) for e in self._file_examples() if e.label in wanted]
        vectors = [self.embed([t for t, _ in rows])] if rows else []
        store = self._store() if self.use_store else None
        if store is not None:
            stored = store.all(task, labels=labels, with_vectors=self._store_vectors)
            if stored:
                rows += [(e.text, e.label) for e, _ in stored]
                vectors.append(np.stack([v for _, v in stored]) if self._store_vectors
                               else self.embed([e.text for e, _ in stored]))
        counts = {label: sum(1 for _, l in rows if l == label) for label in labels}
        present = [label for label in labels if counts[label]]
        if len(present) < 2:
            raise InvalidOutputError(f"the encoder tier has no trained model for {task} with these labels and "
                                     f"too few examples to fit a head (examples per label: {counts}); "
                                     "add labelled examples or run `cascade train`")
        digest = hashlib.sha256("\n".join(f"{l}\t{t}" for t, l in sorted(rows)).encode()).hexdigest()
        head = fit_linear_head(np.concatenate(vectors), [l for _, l in rows], present, c=self.c)
        known = {label for label in present if counts[label] >= self.min_per_label}
        return HeadBackend(head, self.embed, model_id=f"encoder:{self.base}+logreg({len(rows)} examples)",
                           head_id=f"frozen:{digest[:16]}", known=known)


ENCODER_PROMPT = "encoder:raw-text"  # the prompt version an encoder's calibration is fitted for: it reads no prompt


def bound_handle(handle, runtime: EncoderTierRuntime, task: str, labels: list[str]):
    """The tier handle of one run: its backend and audit identity are the head serving (task, labels)
    (a trained artifact's id, or `frozen:<hash>` of a fitted head's examples), resolved lazily inside
    the attempt so that a tier with no usable head escalates instead of failing the run."""
    from dataclasses import replace

    return replace(handle, backend=lambda: runtime.backend_for(task, labels),
                   model_file_hash=lambda: runtime.backend_for(task, labels).file_hash)


def runtime_for(tier, data_dir: Path, store: Callable[[], ExampleStore | None], default_embedder) -> EncoderTierRuntime:
    """The runtime of a configured encoder tier (orchestrator.core.config.EncoderTier)."""
    from orchestrator.core.example_files import read_examples

    path = tier.examples_file
    examples = cache(lambda: read_examples(path) if path is not None else [])  # read when first needed
    runtime = EncoderTierRuntime(data_dir=data_dir, base=tier.base, examples=examples, store=store,
                                 use_store=tier.use_store, use_trained=tier.use_trained, c=tier.c,
                                 min_per_label=tier.min_per_label, heads=tier.heads, threads=tier.threads)
    if tier.base == DEFAULT_BASE:  # share the cascade's embedding model instead of loading a second copy
        runtime._embed = CachedEmbed(lambda texts: default_embedder().embed(texts), threads=tier.threads)
    return runtime


class EncoderTiers:
    """A cascade's encoder tiers by name: bound to each run's task and labels, told of new examples."""

    def __init__(self) -> None:
        self.runtimes: dict[str, EncoderTierRuntime] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.runtimes

    def add(self, tier, data_dir: Path, store, default_embedder) -> None:
        self.runtimes[tier.name] = runtime_for(tier, data_dir, store, default_embedder)

    def bind(self, handles: list, task: str, labels: list[str]) -> list:
        return [bound_handle(h, self.runtimes[h.name], task, labels) if h.name in self.runtimes else h
                for h in handles]

    def examples_added(self, task: str) -> None:
        for runtime in self.runtimes.values():
            runtime.examples_added(task)

    def wait(self, timeout: float | None = None) -> None:
        for runtime in self.runtimes.values():
            runtime.wait(timeout)

    def prefetch(self, task: str, labels: Callable[[], list[str]], texts: list[str]) -> None:
        from agents.errors import CascadeError

        for runtime in self.runtimes.values():
            try:
                runtime.prefetch(task, labels(), texts)
            except CascadeError:
                pass  # no head for these labels: each item escalates; nothing to warm

    def close(self) -> None:
        for runtime in self.runtimes.values():
            runtime.close()


def _check_head_base(head_file: Path, base: str) -> None:
    """A packaged head is a linear map of one base encoder's embeddings: on another base its answers
    would be noise, so that is a configuration error, not a silent fallback."""
    manifest = head_file.with_name("manifest.json")
    if manifest.is_file():
        fitted_on = json.loads(manifest.read_text()).get("base_model", {}).get("name")
        if fitted_on and fitted_on != base:
            raise ConfigError(f"the head {head_file} was fitted on {fitted_on}; this encoder tier's base is {base}: "
                              f"set the tier's base to {fitted_on} or train a head for {base} (cascade train)")
