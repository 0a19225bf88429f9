"""Fit a calibration artifact for one tier of the ladder on labelled data (`cascade calibrate`, and the
stream experiment's calibrated tiers). `run_calibration` scores a fit and a disjoint test split
(cached in the data dir), fits, evaluates and saves the artifact."""

from __future__ import annotations

import hashlib
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from agents.errors import ConfigError, InvalidInputError

__all__ = ["run_calibration"]


def _scoring_tier(settings, index: int, task: str = "classify", labels: list[str] | None = None):
    """The ladder's tier `index` (0: the first) as a scoring backend, with its model file hash (an
    encoder tier: the head it serves for the task and labels, named by its artifact id)."""
    from orchestrator.core.config import EncoderTier, LlamaCppTier
    from orchestrator.core.models import file_sha256, resolve_model_path

    if not 0 <= index < len(settings.tiers):
        raise ConfigError(f"the ladder has {len(settings.tiers)} tiers; there is no tier {index + 1} to calibrate")
    tier = settings.tiers[index]
    if isinstance(tier, EncoderTier):
        return (tier, *_encoder_scorer(settings, tier, task, labels))
    if not isinstance(tier, LlamaCppTier):
        raise ConfigError(f"calibration scores labels with the tier's logits or an encoder's head; tier {tier.name!r} "
                          f"is {tier.kind}: calibrate a local GGUF or encoder tier")
    from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

    path = resolve_model_path(tier.model_path, settings.data_dir, tier_name=tier.name)
    backend = LlamaCppBackend(LlamaCppOptions(model_path=path, n_ctx=tier.n_ctx, n_threads=tier.n_threads))
    return tier, backend, file_sha256(path, settings.data_dir)


def _encoder_scorer(settings, tier, task: str, labels: list[str]):
    """The head an encoder tier serves for (task, labels), as the cascade would pick it."""
    from agents.retrieval import ExampleStore
    from orchestrator.training.encoders import load_embedder
    from orchestrator.training.serving import runtime_for

    store = []
    def open_store():
        store.append(ExampleStore(path=settings.data_dir / "qdrant", url=settings.qdrant_url))
        return store[-1]
    runtime = runtime_for(tier, settings.data_dir, open_store, lambda: load_embedder(tier.base, settings.data_dir))
    try:
        backend = runtime.backend_for(task, labels)
    finally:
        for opened in store:
            opened.close()
    return backend, backend.file_hash


def _encoder_logprobs(backend, items, labels: list[str]) -> np.ndarray:
    """Log-probabilities of the encoder head over `labels` (items embedded in batches)."""
    rows = []
    for start in range(0, len(items), 256):
        rows += backend.predict_proba_batch([e.text for e in items[start:start + 256]], labels)
    return np.log(np.maximum(np.array([[row[label] for label in labels] for row in rows]), 1e-300))


def _jsonl_only(data: str, part: str = "train", root=None, labels=None):
    """The runtime's own loader: a JSONL file of labelled rows. The front doors pass
    `evaluation.datasets.load_named`, which also knows the public sets by name."""
    from orchestrator.core.labelled import load_jsonl

    return load_jsonl(data, labels)


def _splits(load, data: str, fit_size: int, test_size: int, pool_size: int, seed: int, root, labels,
            task_labels=None):
    """(fit, test, demonstration pool, label list), each part a (dataset, examples) pair, all three
    disjoint. banking77 fits on train (the pool is another part of train) and tests on test; any
    other set is split into disjoint, stratified parts. A task with fixed labels (`task_labels`)
    reads the set's labels under its names (SMS spam/ham as fraud/legit)."""
    from orchestrator.core.labelled import relabel, split

    if task_labels is not None and data == "banking77":
        raise InvalidInputError(f"banking77 has no labels for a task with the labels {list(task_labels)}; "
                                "use sms, smishing or a JSONL file")

    pool_sizes = [pool_size] if pool_size else []
    if data == "banking77":
        train, test = load("banking77", "train", root), load("banking77", "test", root)
        fit, *pool = split(train.examples, [fit_size, *pool_sizes], seed=seed)
        seen = {e.text for e in fit + (pool[0] if pool else [])}  # a test text also in train stays out
        [held_out] = split([e for e in test.examples if e.text not in seen], [test_size], seed=seed)
        return (train, fit), (test, held_out), (train, pool[0] if pool else []), train.labels
    dataset = load(data, root=root, labels=labels)
    if task_labels is not None:
        dataset = relabel(dataset, task_labels)
    fit, held_out, *pool = split(dataset.examples, [fit_size, test_size, *pool_sizes], seed=seed)
    return (dataset, fit), (dataset, held_out), (dataset, pool[0] if pool else []), dataset.labels


class _PoolRetriever:
    """text -> the k nearest pool examples (with their similarity), as `Cascade.run` picks them from
    the example store (same embeddings, label filter and order). The store lives in a temporary
    directory and holds the pool only, so no fit or test item can retrieve itself. It is built on
    the first call: a run whose log-probs are all cached, with no vote, embeds nothing. Each text is
    looked up once: the prompt and the vote share its neighbours."""

    def __init__(self, pool, labels: list[str], k: int, order: str, directory: Path) -> None:
        self.pool, self.labels, self.k, self.order, self.directory = pool, labels, k, order, directory
        self.store = None
        self.found: dict[str, list] = {}

    def __call__(self, text: str) -> list:
        if text not in self.found:
            self.found[text] = self._store().nearest("calibration", text, self.k, self.labels, order=self.order)
        return self.found[text]

    def label_counts(self) -> dict[str, int]:
        """The pool store's examples per label (near-duplicates are stored once), for the balanced vote."""
        return self._store().label_counts("calibration", self.labels)

    def _store(self):
        from agents.retrieval import Example, ExampleStore

        if self.store is None:
            self.store = ExampleStore(path=self.directory / "qdrant")
            self.store.add("calibration", [Example(text=e.text, label=e.label, source="calibration:pool")
                                           for e in self.pool])
        return self.store


@contextmanager
def _retriever(pool, labels: list[str], k: int, order: str):
    if k == 0:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="cascade-calibrate-") as tmp:
        retriever = _PoolRetriever(pool, labels, k, order, Path(tmp))
        try:
            yield retriever
        finally:
            if retriever.store is not None:
                retriever.store.close()


def _with_votes(z: np.ndarray, shown: list, labels: list[str], weight: float,
                store_counts: dict[str, int]) -> np.ndarray:
    """The model's log-probs [n, k] blended with each item's neighbour vote, as the cascade's graph
    blends them at run time (`agents.classify.blend_vote`), back in log space for the calibrator."""
    from scipy.special import softmax

    from agents.classify import blend_vote, neighbour_vote

    rows = []
    for probs, neighbours in zip(softmax(z, axis=1), shown):
        vote = neighbour_vote([(d.label, d.score) for d in neighbours], labels, store_counts)
        blended = blend_vote(dict(zip(labels, probs)), vote, weight)
        rows.append(np.log(np.maximum([blended[label] for label in labels], 1e-300)))
    return np.array(rows).reshape(z.shape)


def run_calibration(settings, task: str, data: str, *, fit_size: int, test_size: int, seed: int = 0,
                    method: str = "auto", target_accuracy: float | None = None, delta: float = 0.1,
                    target_escalation_rate: float | None = None, max_escalation_share: float | None = None,
                    per_class: bool = False, labels: list[str] | None = None, data_root: Path | None = None,
                    demos: int = 0, demo_pool: int = 1000, report_dir: Path | None = None,
                    cache_dir: Path | None = None, tier_index: int = 0, on_escalated: bool = False,
                    min_per_class: int = 100, progress: bool = True, load=_jsonl_only) -> dict[str, Any]:
    """Collect one tier's label log-probs (tier `tier_index`) on a fit split and a disjoint test split
    (cached in the data dir), fit, evaluate, save. Returns {"artifact", "report", "path", "report_dir", "skipped"}. The log-prob
    cache lives in `cache_dir` (default: the data dir's calibration/cache). `tier_index` picks the
    tier to calibrate (default the first; each tier's artifact matches its own model file).

    With `demos` = k > 0 every item's prompt carries its k nearest examples from a third disjoint
    part (`demo_pool` items), as the cascade's prompts do once the task's example store holds at
    least k examples: the artifact is for that prompt version (`classify-v2+demos{k}`). A task with
    its own prompt (fraud) is calibrated on that prompt and its fixed labels (`fraud-v1`).

    With `on_escalated` a tier after the first is fitted and tested only on the items every tier
    before it escalates, by those tiers' newest artifacts (which must exist): the items it answers
    in the cascade. A larger model is often surer on the easy items the small one keeps, so its
    confidence on all items can overstate it where it is asked.

    `load(data, part, root, labels)` reads `data` into a `Dataset` (default: a JSONL file only)."""
    from orchestrator.calibration.store import ArtifactStore
    from orchestrator.calibration.fitting import calibrated_predictions, evaluate_artifact, fit_artifact, labels_id, threshold_for
    from orchestrator.calibration.label_scoring import LogprobCache, collect_label_logprobs
    from orchestrator.core.tasks import TASKS

    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    spec = TASKS[task]
    if not spec.label_scored:
        raise InvalidInputError(f"the {task} task generates its answers: it has no label scores to calibrate; "
                                f"its confidence threshold is tasks.{task}.threshold in the config")
    if on_escalated and tier_index == 0:
        raise InvalidInputError("--on-escalated fits a later tier on what the tiers before it escalate; tier 1 has none")
    if demos < 0 or (demos and demo_pool < demos):
        raise InvalidInputError(f"--demos must be >= 0 and the demonstration pool at least that large; "
                                f"got demos={demos}, demo pool={demo_pool}")
    examples = settings.tasks[task].examples if task in settings.tasks else None
    order = examples.order if examples else "nearest_last"
    vote_weight = examples.vote_weight if examples and demos else 0.0
    # the prompt (and vote) the cascade uses once the store holds k examples
    PROMPT_VERSION = spec.prompt_version([("", "")] * demos, vote_weight)
    (fit_set, fit), (test_set, test), (_, pool), label_list = _splits(
        load, data, fit_size, test_size, demo_pool if demos else 0, seed, data_root, labels, spec.labels)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(settings.data_dir)
    tier, backend, model_hash = _scoring_tier(settings, tier_index, task, label_list)
    encoder = hasattr(backend, "predict_proba_batch")
    if encoder:  # it reads the raw text, no prompt: retrieved demonstrations do not apply
        from orchestrator.training.serving import ENCODER_PROMPT as PROMPT_VERSION

        if demos or on_escalated:
            raise InvalidInputError("an encoder tier reads no prompt: calibrate it without --demos and --on-escalated")
    cache_dir = cache_dir or settings.data_dir / "calibration" / "cache"
    # Retrieved demonstrations depend on the pool's content (which the split sizes change), so the
    # cached scores are keyed by it.
    pool_id = "-pool" + hashlib.sha256("\n".join(e.text for e in pool).encode()).hexdigest()[:12] if demos else ""
    # The cache holds the model's own log-probs, so it is keyed by the prompt without the vote.
    scored_prompt = spec.prompt_version([("", "")] * demos)

    def scores(scorer, scorer_hash, dataset, items, what, retrieve):
        """(log-probs as the tier's calibration sees them, the items that scored, how many did not)."""
        name = f"{dataset.name}-{scorer_hash[:12]}-{scored_prompt}{pool_id}-{labels_id(label_list)}.npz"
        shown = None if retrieve is None else (lambda text: [(d.text, d.label) for d in retrieve(text)])
        if encoder:
            return _encoder_logprobs(scorer, items, label_list), list(items), 0
        z = collect_label_logprobs(scorer, items, label_list, progress=progress,
                                   cache=LogprobCache(cache_dir / name, len(label_list)),
                                   description=f"{what} ({dataset.name})", demonstrations=shown,
                                   instruction=spec.instruction)
        ok = np.isfinite(z).all(axis=1)
        kept = [e for e, keep in zip(items, ok) if keep]
        z = z[ok]
        if vote_weight:
            z = _with_votes(z, [retrieve(e.text) for e in kept], label_list, vote_weight, retrieve.label_counts())
        return z, kept, int((~ok).sum())

    earlier_tiers = []  # (backend, model hash, newest artifact) of each tier before this one
    for earlier in range(tier_index if on_escalated else 0):
        earlier_tier, earlier_backend, earlier_hash = _scoring_tier(settings, earlier, task, label_list)
        artifact = store.latest(task, earlier_hash, PROMPT_VERSION, label_list)
        if artifact is None:
            raise InvalidInputError(f"--on-escalated needs tier {earlier + 1} ({earlier_tier.name}) calibrated "
                                    f"first: {store.why_none(task, earlier_hash, PROMPT_VERSION, label_list)}")
        earlier_tiers.append((earlier_backend, earlier_hash, artifact))

    def escalated(dataset, items, what, retrieve):
        """The items every tier before `tier_index` escalates, by its newest artifact."""
        for number, (earlier_backend, earlier_hash, artifact) in enumerate(earlier_tiers, start=1):
            z, items, _ = scores(earlier_backend, earlier_hash, dataset, items, f"{what}, tier {number}", retrieve)
            predicted, confidence = calibrated_predictions(artifact, z)
            items = [e for e, p, c in zip(items, predicted, confidence)
                     if c < threshold_for(artifact, label_list[p]).value]
        return items

    with _retriever(pool, label_list, demos, order) as retrieve:
        if on_escalated:
            fit, test = escalated(fit_set, fit, "fit split", retrieve), escalated(test_set, test, "test split",
                                                                                  retrieve)
        z_fit, fit_kept, skipped_fit = scores(backend, model_hash, fit_set, fit, "fit split", retrieve)
        z_test, test_kept, skipped_test = scores(backend, model_hash, test_set, test, "test split", retrieve)
    gold_fit, gold_test = fit_set.gold_index(fit_kept), test_set.gold_index(test_kept)
    source = {"data": data, "fit_set": fit_set.name, "test_set": test_set.name, "fit_size": len(gold_fit),
              "test_size": len(gold_test), "seed": seed, "tier": tier.name, "model_path": getattr(tier, "model_path", model_hash),
              "demonstrations": {"k": demos, "pool_size": len(pool), "order": order,
                                 "vote_weight": vote_weight} if demos else None,
              "on_escalated": {"fit_sampled": fit_size, "test_sampled": test_size} if on_escalated else None}
    if method == "auto":  # chosen on the fit split alone; the test split only measures the choice
        from orchestrator.calibration.select import choose_method

        method, cv_brier = choose_method(z_fit, gold_fit, label_list, seed=seed)
        source["method_selection"] = {"chosen": method, "cv_brier": cv_brier, "folds": 5}
    artifact = fit_artifact(task, z_fit, gold_fit, label_list, model_hash, PROMPT_VERSION, method=method,
                            target_accuracy=target_accuracy, delta=delta,
                            target_escalation_rate=target_escalation_rate,
                            max_escalation_share=max_escalation_share, per_class=per_class,
                            min_per_class=min_per_class, source=source)
    report = evaluate_artifact(artifact, z_test, gold_test)
    saved = store.save(artifact.model_copy(update={"test_metrics": report.model_dump()}))
    folder = report_dir or store.root / task / f"v{saved.version:04d}-report"
    report = evaluate_artifact(saved, z_test, gold_test, report_dir=folder, title=f"{data} ({len(label_list)} labels)")
    (Path(folder) / "report.json").write_text(json.dumps(
        {"artifact": saved.id, "fit": saved.fit_metrics, "test": report.model_dump(), "source": source}, indent=2))
    path = store.root / task / f"v{saved.version:04d}-{saved.labels_id}.json"
    return {"artifact": saved, "report": report, "path": path, "report_dir": Path(folder),
            "skipped": skipped_fit + skipped_test}
