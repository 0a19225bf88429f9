"""`cascade eval` for the label tasks: every tier once per item (replayed from the cache), then
every policy compared on the same outputs, with figures, a table-ready summary and plots.

Tiers: tier 1 is SmolLM2 (bundled) and tier 2 Gemma-3-270M, both in-process through the same
LlamaCppBackend and scored on the same prompt (the task's instruction, its labels, and the k
nearest labelled pool examples as demonstrations, as the cascade's prompt once its example store
holds them). In the default ladder tier 2 runs behind the local OpenAI-compatible server; scoring it
in-process gives the same label probabilities without the server round trip and lets every policy
see tier 2's full label distribution.

Policies: always-small, always-large, random at the calibrated cascade's rate (averaged over 20
seeds), the oracle, the calibrated cascade (calibrator chosen and fitted on the fit split, threshold
by the guaranteed-accuracy policy), a prompt-only router (RouteLLM style: the neighbours' win rate
of the large tier, from MiniLM embeddings of the fit split) and self-verification (AutoMix style:
the small model says yes/no to its own answer, scored from its logits). The routers are compared
with the cascade at its escalation rate; their curves sweep every threshold.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from agents import classify as classification
from agents.errors import InvalidInputError
from evaluation.policies import (
    TierOutcomes,
    accuracy,
    compare_policies,
    curves,
    knn_win_rate,
    positive_f1,
)

from orchestrator.calibration.fitting import calibrated_predictions, fit_artifact
from orchestrator.calibration.select import choose_method
from evaluation.replay import (
    VERIFY_INSTRUCTION,
    VERIFY_LABELS,
    VERIFY_PROMPT_VERSION,
    TierSpec,
    cache_name,
    embed_cached,
    eval_splits,
    fit_test_indices,
    nearest_demonstrations,
    run_tier,
)
from orchestrator.core.tasks import TASKS
from evaluation.ladder import Price, bundled_tiers, embedder, price_of

__all__ = ["run_eval"]

def run_eval(task: str, data: str, *, n: int, fit_size: int, data_dir: Path, demos: int = 4, demo_pool: int = 1000,
             seed: int = 0, target_accuracy: float = 0.95, delta: float = 0.1, knn: int = 10,
             price_small: Price = Price(0.0, 0.0, "local tier"), price_large: Price | None = None,
             threads: int = 1, root: Path | None = None, tiers: tuple[TierSpec, TierSpec, TierSpec] | None = None,
             embed=None, progress=None, plot_dir: Path | None = None) -> dict[str, Any]:
    """Run (or replay) both tiers and the self-verifier, then compare every policy on the test split.

    `tiers` (small, large, verifier) and `embed` replace the bundled models (tests pass fakes); the
    verifier is the small model under another prompt, so by default it shares the small tier's backend.
    """
    if task == "ask":  # document QA: generated answers, its own module
        from evaluation.qa import run_eval_qa

        return run_eval_qa(data, n=n, fit_size=fit_size, data_dir=data_dir, seed=seed, target_accuracy=target_accuracy,
                           delta=delta, knn=knn, price_small=price_small, price_large=price_large, threads=threads,
                           root=root, tiers=tiers, embed=embed, progress=progress, plot_dir=plot_dir)
    if task == "contract":  # contract review: (contract, category) pairs, generated answers
        from evaluation.contract import run_eval_contract

        return run_eval_contract(data, n=n, fit_size=fit_size, data_dir=data_dir, seed=seed,
                                 target_accuracy=target_accuracy, delta=delta, knn=knn, price_small=price_small,
                                 price_large=price_large, threads=threads, root=root, tiers=tiers, embed=embed,
                                 progress=progress, plot_dir=plot_dir)
    started = time.perf_counter()
    spec = TASKS[task]
    price_large = price_large or price_of("gpt-4o-mini")
    s = eval_splits(task, data, n, fit_size, demo_pool if demos else 0, seed, root)
    if demos and len(s.pool) < demos:
        raise InvalidInputError(f"{len(s.pool)} items are left for the demonstration pool; --demos {demos} needs at "
                                "least that many: lower --n, --fit-size or --demos")
    data_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = data_dir / "eval" / "cache"
    tiers = tiers or bundled_tiers(data_dir, threads)
    small, large, verifier = tiers
    embed = embed or embedder(threads)

    items = s.fit + s.test
    texts = [e.text for e in items]
    embeddings = cache_dir / f"{s.name}-all-MiniLM-L6-v2.npz"
    vectors, embed_ms = embed_cached(texts, embed, embeddings)
    pool_vectors, _ = embed_cached([e.text for e in s.pool], embed, embeddings) if demos else (None, None)
    shown = nearest_demonstrations(vectors, pool_vectors, s.pool, demos)
    blocks = [classification.item_block(t, d) for t, d in zip(texts, shown)]
    version = spec.prompt_version([("", "")] * demos)
    # Demonstrations come from the pool, so its exact content is part of every cached prompt.
    pool_id = "pool" + hashlib.sha256("\n".join(e.text for e in s.pool).encode()).hexdigest()[:12] if demos else "nopool"
    outputs = {t.name: run_tier(t, texts, blocks, s.labels, spec.instruction,
                                cache_dir / cache_name(s.name, t, version, s.labels, pool_id), progress)
               for t in (small, large)}
    ok = np.isfinite(outputs[small.name]["logprobs"]).all(axis=1) & np.isfinite(outputs[large.name]["logprobs"]).all(axis=1)
    gold = s.gold(items)
    fit_idx, test_idx = fit_test_indices(ok, len(s.fit), "no test item could be scored by both tiers (all longer "
                                                          "than the context?)")

    # The small tier answers as the deployed tier 1 does: its calibration artifact's label and confidence.
    z_small = outputs[small.name]["logprobs"]
    method, cv_brier = choose_method(z_small[fit_idx], gold[fit_idx], s.labels, seed=seed)
    artifact = fit_artifact(task, z_small[fit_idx], gold[fit_idx], s.labels, small.model_hash, version, method=method,
                            target_accuracy=target_accuracy, delta=delta)
    small_pred, conf = calibrated_predictions(artifact, z_small[ok])
    small_pred_all = np.full(len(items), -1)
    small_pred_all[ok] = small_pred
    conf_all = np.full(len(items), np.nan)
    conf_all[ok] = conf
    # The large tier is debiased the same way (its own calibrator, chosen and fitted on the fit split):
    # these base models' raw argmax leans to one label, which would make escalation look useless.
    z_large = outputs[large.name]["logprobs"]
    large_method, _ = choose_method(z_large[fit_idx], gold[fit_idx], s.labels, seed=seed)
    large_artifact = fit_artifact(task, z_large[fit_idx], gold[fit_idx], s.labels, large.model_hash, version,
                                  method=large_method, max_escalation_share=1.0)
    large_pred_all = np.full(len(items), -1)
    large_pred_all[ok] = calibrated_predictions(large_artifact, z_large[ok])[0]

    # Self-verification of the small tier's own answer on the test items (cached per text and answer).
    verify_keys = [f"{s.labels[small_pred_all[i]]}\n{texts[i]}" for i in test_idx]
    # The verifier sees the text and the proposed label, not the demonstrations: a short prompt after
    # a reused prefix, so checking costs a fraction of answering.
    verify_items = [f"{classification.item_block(texts[i])}\nProposed label: {s.labels[small_pred_all[i]]}\n\n"
                    "Is the proposed label correct?" for i in test_idx]
    checked = run_tier(verifier, verify_keys, verify_items, VERIFY_LABELS, VERIFY_INSTRUCTION,
                       cache_dir / cache_name(s.name, verifier, VERIFY_PROMPT_VERSION, s.labels, "nopool"),
                       progress)
    # An item too long to verify gets P(yes) 0.5 and no cost or time.
    checked = {key: np.nan_to_num(value, nan=0.0) for key, value in checked.items()}
    p_yes = softmax(checked["logprobs"], axis=1)[:, 0]

    def cost(tier: TierSpec, price: Price, idx) -> np.ndarray:
        return price.cost(outputs[tier.name]["tokens_in"][idx], outputs[tier.name]["tokens_out"][idx])

    t = TierOutcomes(gold=gold[test_idx], small_pred=small_pred_all[test_idx], large_pred=large_pred_all[test_idx],
                     small_cost=cost(small, price_small, test_idx), large_cost=cost(large, price_large, test_idx),
                     small_ms=outputs[small.name]["ms"][test_idx], large_ms=outputs[large.name]["ms"][test_idx],
                     shared_ms=embed_ms[test_idx] if demos else np.zeros(len(test_idx)))
    if task == "fraud":
        quality, quality_name = positive_f1(s.labels.index("fraud")), "F1 (fraud)"
    else:
        quality, quality_name = accuracy, "accuracy"

    # The prompt-only router learns where the large tier wins from the fit split's outcomes.
    fit_wins = (small_pred_all[fit_idx] != gold[fit_idx]) & (large_pred_all[fit_idx] == gold[fit_idx])
    knn_keep = 1.0 - knn_win_rate(vectors[fit_idx], fit_wins, vectors[test_idx], k=knn)
    cascade_conf = conf_all[test_idx]
    threshold = artifact.thresholds()
    escalated = ~np.asarray(threshold.accept(cascade_conf), dtype=bool).reshape(-1)
    m = int(escalated.sum())
    policies, rows = compare_policies(t, quality, escalated, cascade_conf, knn_keep, p_yes,
                                      knn_ms=0.0 if demos else embed_ms[test_idx],
                                      verify_cost=price_small.cost(checked["tokens_in"], checked["tokens_out"]),
                                      verify_ms=checked["ms"])
    result: dict[str, Any] = {
        "task": task, "data": data, "quality_metric": quality_name, "seed": seed,
        "sizes": {"test": len(test_idx), "fit": len(fit_idx), "pool": len(s.pool),
                  "skipped": int((~ok).sum())},
        "demonstrations": demos, "prompt_version": version,
        "tiers": {"small": {"name": small.name, "model_hash": small.model_hash, "price": vars(price_small),
                            "quality": quality(t.small_pred, t.gold)},
                  "large": {"name": large.name, "model_hash": large.model_hash, "price": vars(price_large),
                            "quality": quality(t.large_pred, t.gold), "calibrator": large_method,
                            "how": "in-process llama.cpp, scored"}},
        "calibration": {"method": method, "cv_brier": cv_brier, "target_accuracy": target_accuracy, "delta": delta,
                        "threshold": None if math.isinf(threshold.value) else threshold.value,
                        "escalated": m},
        "policies": rows,
        "curves": curves(policies),
        "model_calls": {tier.name: tier.calls for tier in tiers},
        "seconds": time.perf_counter() - started,
    }
    if plot_dir is not None:
        from evaluation.report import write_plots

        result["plots"] = write_plots(result, policies, t, quality_name, cascade_conf, p_yes, plot_dir)
    return result
