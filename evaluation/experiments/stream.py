"""Issue 8's second experiment: SMS items in order through a real Cascade with learning on.
Escalated items are answered by tier 2 (its confident answers are learned) or by a reviewer that
returns the gold label (an oracle); per window: escalation rate, accuracy of the answers tier 1
kept, overall accuracy, store size.

Results are plain dicts (JSON-ready); the CLI (`cascade experiment stream`) prints and saves them.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents.errors import CascadeError, InvalidInputError
from agents.retrieval import Embedder, ExampleStore
from agents.retrieval import Example as StoredExample

from evaluation.datasets import Example, load_sms_spam
from evaluation.experiments.demonstrations import N_CTX, Progress
from orchestrator.core.models import resolve_model_path

__all__ = ["stream_items", "run_stream", "stream_windows", "plot_stream"]


def stream_items(n: int, n_seed: int, seed: int = 0, root: str | Path | None = None
                 ) -> tuple[list[Example], list[Example], list[str], list[Example]]:
    """(seed examples, stream, labels, the rest) from the SMS collection, deduplicated. The seed
    holds n_seed examples split evenly over the labels; the stream is the next n other messages in
    the file's own order; the rest (neither) is where a calibration of tier 1 may be fitted."""
    dataset = load_sms_spam(root)
    unique = list({e.text: e for e in dataset.examples}.values())
    rng = np.random.default_rng(seed)
    seeds: list[Example] = []
    for j, label in enumerate(dataset.labels):
        members = [e for e in unique if e.label == label]
        want = n_seed // len(dataset.labels) + (1 if j < n_seed % len(dataset.labels) else 0)
        seeds += [members[i] for i in rng.choice(len(members), size=want, replace=False)]
    taken = {e.text for e in seeds}
    others = [e for e in unique if e.text not in taken]
    stream, rest = others[:n], others[n:]
    if len(stream) < n:
        raise InvalidInputError(f"only {len(stream)} SMS messages are left for the stream; ask for fewer than {n}")
    return seeds, stream, dataset.labels, rest


def _calibrate_tier(config: Path, data_dir: Path, rest: Sequence[Example], labels: list[str], k: int,
                    sizes: tuple[int, int, int], target_accuracy: float, seed: int,
                    cache_dir: Path | None, tier_index: int = 0, on_escalated: bool = False) -> dict[str, Any]:
    """Fit one tier's calibration artifact (`cascade calibrate` with k retrieved demonstrations) on
    messages that are neither seeds nor in the stream, saved in the stream's data dir, where every
    run of the stream then uses it. `on_escalated`: fitted per label on the messages tier 1
    escalates (`cascade calibrate --on-escalated --per-class`). Returns the artifact id and its
    test-split figures."""
    from orchestrator.calibration.run import run_calibration
    from orchestrator.core.config import load_settings

    fit_size, test_size, pool_size = sizes
    if fit_size + test_size + pool_size > len(rest):
        raise InvalidInputError(f"calibrating tier 1 needs {fit_size + test_size + pool_size} messages outside the "
                                f"seed and the stream; only {len(rest)} are left: lower the calibration sizes or --n")
    rows = data_dir.parent / "calibration-data.jsonl"
    rows.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in rest))
    settings = load_settings(config, data_dir=str(data_dir))
    result = run_calibration(settings, "classify", str(rows), fit_size=fit_size, test_size=test_size, seed=seed,
                             target_accuracy=target_accuracy, labels=labels, demos=k, demo_pool=pool_size,
                             report_dir=data_dir.parent / f"calibration-report-tier{tier_index + 1}",
                             cache_dir=cache_dir, tier_index=tier_index, on_escalated=on_escalated,
                             per_class=on_escalated, progress=False)
    report, artifact = result["report"], result["artifact"]
    return {"artifact": artifact.id, "method": artifact.method, "fit_size": fit_size,
            "test_size": test_size, "pool_size": pool_size, "target_accuracy": target_accuracy,
            "on_escalated": on_escalated, "fitted_on": artifact.source["fit_size"],
            "tested_on": artifact.source["test_size"], "threshold": artifact.threshold,
            "test": {key: getattr(report, key) for key in ("ece_raw", "ece", "auroc_raw", "auroc", "coverage",
                                                            "kept_accuracy", "guarantee_held")}}


def _stream_config(path: Path, threshold: float, k: int, learn_min_confidence: float, threads: int | None,
                   vote_weight: float = 0.0, learn_only_kept: bool = False) -> Path:
    tiers = [{"name": "smollm2-135m", "kind": "llama_cpp", "model_path": "bundled:smollm2", "n_ctx": N_CTX},
             {"name": "gemma3-270m", "kind": "llama_cpp", "model_path": "bundled:gemma3-270m", "n_ctx": N_CTX}]
    if threads:
        for tier in tiers:
            tier["n_threads"] = threads
    tasks = {"classify": {"threshold": threshold, "examples": {"k": k, "learn": True, "vote_weight": vote_weight,
                                                               "learn_min_confidence": learn_min_confidence,
                                                               "learn_only_kept": learn_only_kept}}}
    path.write_text(yaml.safe_dump({"tiers": tiers, "tasks": tasks}))
    return path


def run_stream(n: int = 2000, window: int = 200, resolver: str = "tier", threshold: float = 0.9, k: int = 4,
               n_seed: int = 20, learn_min_confidence: float = 0.9, seed: int = 0, threads: int | None = None,
               root: str | Path | None = None, models_dir: Path | None = None, budget_min: float | None = None,
               backends: dict[str, Any] | None = None, embedder: Embedder | None = None,
               calibration: tuple[int, int, int] | None = None, target_accuracy: float = 0.95,
               vote_weight: float = 0.0, teacher_calibration: tuple[int, int, int] | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Run SMS items in order through a two-tier Cascade (SmolLM2, then Gemma-3-270M, both
    in-process) with learning on, in a temporary data dir seeded with n_seed labelled examples.

    resolver="tier": escalated items are answered by tier 2; its answers at or above
    learn_min_confidence become examples (Cascade's own learning).
    resolver="reviewer": an item tier 1 would escalate pauses (stop_after_tier=0; tier 2 is never
    loaded) and an ORACLE reviewer resolves it with the GOLD label via add_reviewed_example.

    calibration=(fit, test, pool): before the stream, tier 1 gets a calibration artifact fitted
    (target accuracy `target_accuracy`) on `fit` messages outside the seed and the stream, with
    demonstrations retrieved from `pool` others, and checked on `test` more; the stream's tier 1
    then keeps an answer when the artifact's threshold says so instead of the fixed `threshold`. With
    resolver="tier", tier 2 gets its own artifact the same way: its calibrated confidence decides
    what is learned (an uncalibrated Gemma-3-270M leans to "spam" and would teach that).
    teacher_calibration=(fit, test, pool): tier 2's artifact is instead fitted per label on the
    messages tier 1's artifact escalates among `fit` messages outside the seed and the stream
    (checked on those among `test` more; demonstrations from `pool` others, which may be smaller than
    tier 1's to resemble the stream's young store), and a tier-2 answer is learned only if it reaches
    its label's threshold (`learn_only_kept`): the teacher's accuracy where it is asked, label by label.
    With `vote_weight` > 0 each tier's label probabilities are blended with the retrieved examples'
    similarity-weighted vote (`examples.vote_weight`), in the calibration fit too: a store that grows
    with resolved escalations then raises the confidence of items like them, not only their prompt.
    The artifact is fitted once: as the store grows, its calibration may drift, which the per-window
    kept accuracy shows. `budget_min` stops the stream after the item that exceeds it (the result
    says so).
    """
    from orchestrator.core.cascade import Cascade

    if resolver not in ("tier", "reviewer"):
        raise InvalidInputError(f"resolver must be 'tier' or 'reviewer', got {resolver!r}")
    seeds, stream, labels, rest = stream_items(n, n_seed, seed, root)
    records: list[dict[str, Any]] = []
    started_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cascade-stream-") as tmp:
        tmp_path = Path(tmp)
        config = _stream_config(tmp_path / "cascade.yaml", threshold, k, learn_min_confidence, threads, vote_weight,
                                learn_only_kept=teacher_calibration is not None)
        if resolver == "tier" and "gemma3-270m" not in (backends or {}):
            # Link the assembled Gemma file in rather than assembling it again in the temp dir.
            gemma = resolve_model_path("bundled:gemma3-270m", models_dir or tmp_path / "data")
            (tmp_path / "data" / "models").mkdir(parents=True, exist_ok=True)
            link = tmp_path / "data" / "models" / gemma.name
            if not link.exists():
                link.symlink_to(gemma.resolve())
        # Tier 1's calibration log-probs are cached in the models dir, when given, to outlive the temp dir.
        cache_dir = models_dir / "calibration" / "cache" if models_dir else None
        calibrated = calibration and _calibrate_tier(config, tmp_path / "data", rest, labels, k, calibration,
                                                     target_accuracy, seed, cache_dir)
        if calibrated and resolver == "tier":  # tier 2's answers are kept and learned by its own calibration
            calibrated["tier2"] = _calibrate_tier(config, tmp_path / "data", rest, labels, k,
                                                  teacher_calibration or calibration, target_accuracy,
                                                  seed, cache_dir, tier_index=1,
                                                  on_escalated=teacher_calibration is not None)
        with Cascade.from_config(config, data_dir=str(tmp_path / "data"), backends=backends) as cascade:
            if embedder is not None:
                cascade._examples = ExampleStore(path=tmp_path / "data" / "qdrant", embedder=embedder)
            cascade.examples.add("classify", [StoredExample(text=e.text, label=e.label, source="sms:seed")
                                              for e in seeds])
            for i, e in enumerate(stream):
                records.append(_stream_item(cascade, e, labels, resolver, i))
                records[-1]["store_size"] = cascade.examples.count("classify")
                if progress:
                    progress(resolver, i + 1, len(stream))
                if budget_min is not None and time.perf_counter() - started_all > budget_min * 60:
                    break
    return {"data": "sms", "resolver": resolver, "n_requested": n, "n_done": len(records), "window": window,
            "threshold": None if calibrated else threshold, "calibration": calibrated or None,
            "k": k, "n_seed": len(seeds), "learn_min_confidence": learn_min_confidence,
            "learn_only_kept": teacher_calibration is not None, "vote_weight": vote_weight,
            "stopped_by_budget": len(records) < len(stream), "minutes": (time.perf_counter() - started_all) / 60,
            "windows": stream_windows(records, window), "records": records}


def _stream_item(cascade, e: Example, labels: list[str], resolver: str, index: int) -> dict[str, Any]:
    started = time.perf_counter()
    record: dict[str, Any] = {"index": index, "gold": e.label}
    try:
        if resolver == "tier":
            result = cascade.run("classify", text=e.text, labels=labels)
        else:
            result = cascade.run("classify", text=e.text, labels=labels, stop_after_tier=0)
    except CascadeError as exc:  # e.g. a message too long for the context: counted as a failure
        record.update(tier1_answer=None, tier1_confidence=None, escalated=False, final=None, failed=str(exc)[:200],
                      ms=(time.perf_counter() - started) * 1000, learned=False)
        return record
    first = result.attempts[0]
    escalated = len(result.attempts) > 1 or result.outcome == "pending"
    learned = False
    final = result.answer
    if resolver == "reviewer" and escalated:
        learned = cascade.add_reviewed_example("classify", e.text, e.label, reviewer="oracle-gold",
                                               run_id=result.run_id) is not None
        final = e.label  # the oracle's answer is the gold label by construction
    elif escalated:
        learned = "learned_example" in (cascade.audit.get_run(result.run_id)["params"] or {})
    record.update(tier1_answer=first.answer, tier1_confidence=first.confidence,
                  tier1_model_confidence=first.raw_confidence, calibration=first.calibration,
                  escalated=escalated, final=final,
                  final_tier=result.tier_name, learned=learned, ms=(time.perf_counter() - started) * 1000)
    return record


def stream_windows(records: Sequence[dict[str, Any]], window: int) -> list[dict[str, Any]]:
    """Per consecutive window of items: escalation rate, accuracy of the answers tier 1 kept,
    accuracy of the escalated items' final answers, overall accuracy, examples learned, store size
    at the window's end, median ms per item. A last window shorter than `window` is marked partial."""
    rows = []
    for start in range(0, len(records), window):
        part = records[start:start + window]
        kept = [r for r in part if not r["escalated"] and r.get("final") is not None]
        escalated = [r for r in part if r["escalated"]]
        rows.append({
            "window": start // window + 1, "items": f"{start + 1}-{start + len(part)}", "n": len(part),
            "partial": len(part) < window,
            "escalation_rate": len(escalated) / len(part),
            "kept_accuracy": _accuracy(kept),
            "escalated_accuracy": _accuracy(escalated),
            "overall_accuracy": sum(r.get("final") == r["gold"] for r in part) / len(part),
            "tier1_accuracy_all": sum(r.get("tier1_answer") == r["gold"] for r in part) / len(part),
            "spam_share": sum(r["gold"] == "spam" for r in part) / len(part),
            "learned": sum(bool(r.get("learned")) for r in part),
            "failed": sum(1 for r in part if r.get("failed")),
            "store_size": part[-1].get("store_size"),
            "ms_median": statistics.median(r["ms"] for r in part),
        })
    return rows


def _accuracy(records: Sequence[dict[str, Any]]) -> float | None:
    return sum(r.get("final") == r["gold"] for r in records) / len(records) if records else None


def plot_stream(runs: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "") -> Path:
    """Escalation rate and kept-answer accuracy per window, one pair of lines per named run."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for (name, windows), colour in zip(runs.items(), ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        x = [int(w["items"].split("-")[1]) for w in windows]
        ax.plot(x, [w["escalation_rate"] for w in windows], marker="o", color=colour, label=f"{name}: escalation rate")
        ax.plot(x, [np.nan if w["kept_accuracy"] is None else w["kept_accuracy"] for w in windows], marker="s",
                linestyle="--", color=colour, label=f"{name}: accuracy of tier-1 kept answers")
    ax.set(ylim=(0, 1.02), xlabel="items seen (end of window)", ylabel="rate",
           title=title or "Stream with learning: escalation rate and kept-answer accuracy per window")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path
