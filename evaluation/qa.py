"""`cascade eval --task ask`: the document-QA family (HaluEval QA), every policy on the same cached answers.

Each tier (SmolLM2, then Gemma-3-270M, in-process) answers each item (question + its knowledge
passage) once with the ask task's prompt and JSON schema (agents.qa.draft); its answer text, answer
confidence, tokens and milliseconds are cached in one JSON file per tier under the data dir's eval
cache, keyed by data set, tier, model hash, prompt version and the item's text hash, so a re-run
replays them without a model call. An answer is right by `qa_bench.halueval_right`. Outcomes are
encoded for the label-task policy code: gold all 1, a tier's prediction 1 when its answer is right.

Calibrated cascade: a logistic calibrator (PlattCalibrator, scikit-learn) over the small tier's
signals as the ask task computes them (answer confidence, span check, similarity, grounding),
fitted on the fit split to predict right; threshold by the guaranteed-accuracy policy. Self-
verification: SmolLM2's support judge P(yes) on its own answer (qa_checks.judge), cached the same way.
Prompt-only router: neighbours' win rate of the large tier from MiniLM embeddings of the question.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logit

from agents import qa, qa_checks
from agents.errors import InvalidInputError
from routers.calibrators import PlattCalibrator
from evaluation.policies import (
    TierOutcomes,
    accuracy,
    compare_policies,
    curves,
    knn_win_rate,
)
from routers.policies import GuaranteedAccuracyPolicy

from evaluation.ladder import GenerationEval
from evaluation.replay import (
    RecordingScorer,
    TierSpec,
    cached_records,
    embed_cached,
    fit_test_indices,
    item_key,
    jsonl_objects,
)
from evaluation.benchmarks.qa_checks import halueval_right, halueval_rows

__all__ = ["FEATURES", "calibration_summary", "encode", "fit_cascade", "judge_cost", "outcomes_of", "qa_splits",
           "run_eval_qa", "run_qa_tier"]

FEATURES = ["answer_logit", "span_ok", "similarity", "grounding"]
_FIELDS = ("knowledge", "question", "right_answer")


def _load(data: str, root) -> tuple[str, list[dict]]:
    if data == "halueval":
        return "halueval", halueval_rows(root)
    path = Path(data).expanduser()
    if not path.is_file() or path.suffix != ".jsonl":
        raise InvalidInputError(f"--task ask evaluates document QA: --data halueval (HaluEval QA) or a JSONL file of "
                                f'{{"knowledge", "question", "right_answer"}} rows; {data!r} is not a QA data set')
    rows = []
    for where, row in jsonl_objects(path, '{"knowledge", "question", "right_answer"}'):
        missing = [f for f in _FIELDS if not str(row.get(f) or "").strip()]
        if missing:
            raise InvalidInputError(f"{where}: not a QA row, missing {', '.join(missing)}; --task ask needs "
                                    f'{{"knowledge", "question", "right_answer"}} per line')
        rows.append(row)
    return path.stem, rows


def qa_splits(data: str, n: int, fit_size: int, seed: int = 0, root=None) -> tuple[str, list[dict], list[dict]]:
    """Disjoint fit and test rows (one seeded permutation of the distinct questions)."""
    name, rows = _load(data, root)
    unique = list({r["question"]: r for r in rows}.values())
    if n + fit_size > len(unique):
        raise InvalidInputError(f"{data} has {len(unique)} distinct questions; --n {n} plus --fit-size {fit_size} need more")
    order = np.random.default_rng(seed).permutation(len(unique))
    return name, [unique[i] for i in order[:fit_size]], [unique[i] for i in order[fit_size:fit_size + n]]


def run_qa_tier(tier: TierSpec, rows: list[dict], cache_file: Path, max_tokens: int = 160, progress=None) -> list[dict]:
    """Per row: status (answered / null / invalid / skipped), answer, confidence, span check, tokens, ms."""
    def work(backend, i):
        d = qa.draft(backend, rows[i]["question"], [rows[i]["knowledge"]], max_tokens)
        status = "invalid" if d.output is None else "null" if d.output.answer is None else "answered"
        span = d.output is not None and qa.span_check(d.output, [rows[i]["knowledge"]]).passed
        return {"status": status, "answer": d.output.answer if d.output else None, "text": d.text,
                "confidence": d.confidence, "span_ok": bool(span), "tokens_in": d.tokens_in, "tokens_out": d.tokens_out}
    keys = [item_key(r["question"], r["knowledge"]) for r in rows]
    return cached_records(tier, cache_file, keys, work, progress)


def _judged(verifier: TierSpec, rows: list[dict], answers: list[dict], cache_file: Path, progress) -> list[dict]:
    def work(backend, i):
        recording = RecordingScorer(backend)
        p = qa_checks.judge(recording, rows[i]["question"], answers[i]["answer"], [rows[i]["knowledge"]])
        return {"p_yes": p, "tokens_in": recording.last.tokens_in, "tokens_out": recording.last.tokens_out}
    todo = [i for i, a in enumerate(answers) if a["status"] == "answered"]
    keys = [item_key(rows[i]["question"], rows[i]["knowledge"], answers[i]["answer"]) for i in todo]
    judged = dict(zip(todo, cached_records(verifier, cache_file, keys, lambda b, j: work(b, todo[j]), progress)))
    # no answer (null or invalid) is nothing to verify: P(yes) 0, no call
    none = {"p_yes": 0.0, "tokens_in": 0, "tokens_out": 0, "ms": 0.0}
    return [{**none, **judged[i]} if i in judged and judged[i].get("p_yes") is not None else none
            for i in range(len(answers))]


def _signals(rows: list[dict], small: list[dict], embed, cache_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """[n, len(FEATURES)] signals of the small tier's answers, and the ms of computing them (embeddings)."""
    answered = [a["status"] == "answered" for a in small]
    qa_text = [f"{r['question']} {a['answer']}" if ok else r["question"] for r, a, ok in zip(rows, small, answered)]
    file = cache_dir / f"{name}-qa-signals-all-MiniLM-L6-v2.npz"
    v_qa, ms_qa = embed_cached(qa_text, embed, file)
    v_k, ms_k = embed_cached([r["knowledge"] for r in rows], embed, file)
    x = np.zeros((len(rows), len(FEATURES)))
    for i, (r, a, ok) in enumerate(zip(rows, small, answered)):
        conf = a.get("confidence") if a["status"] != "invalid" else None
        x[i, 0] = logit(np.clip(conf if conf is not None else 0.0, 1e-4, 1 - 1e-4))
        x[i, 1] = float(a.get("span_ok", False))
        if ok:
            x[i, 2], x[i, 3] = float(v_qa[i] @ v_k[i]), qa_checks.grounding(a["answer"], [r["knowledge"]])
    return x, np.where(answered, ms_qa + ms_k, 0.0)


def encode(small_right, large_right, small_cost, large_cost, small_ms, large_ms) -> TierOutcomes:
    """QA outcomes for the label policies: gold 1 everywhere, a tier's prediction 1 iff its answer is right."""
    s = np.asarray(small_right, dtype=np.int64)
    return TierOutcomes(gold=np.ones_like(s), small_pred=s, large_pred=np.asarray(large_right, dtype=np.int64),
                        small_cost=np.asarray(small_cost, float), large_cost=np.asarray(large_cost, float),
                        small_ms=np.asarray(small_ms, float), large_ms=np.asarray(large_ms, float),
                        shared_ms=np.zeros(len(s)))


def outcomes_of(small_right, large_right, small_records: list[dict], large_records: list[dict], test_idx,
                price_small, price_large, small_extra_ms=0.0) -> TierOutcomes:
    """The test items' outcomes from the two tiers' cached answer records: right or not, the price
    of their tokens and their time (plus `small_extra_ms` per item that only tier 1 spends)."""
    def column(records: list[dict], key: str) -> np.ndarray:
        return np.array([records[i].get(key) or 0 for i in test_idx], dtype=float)

    return encode(small_right[test_idx], large_right[test_idx],
                  price_small.cost(column(small_records, "tokens_in"), column(small_records, "tokens_out")),
                  price_large.cost(column(large_records, "tokens_in"), column(large_records, "tokens_out")),
                  column(small_records, "ms") + small_extra_ms, column(large_records, "ms"))


def judge_cost(checked: list[dict], price) -> np.ndarray:
    """What the self-verification judge's calls on the test items cost, at tier 1's price."""
    return price.cost(np.array([c["tokens_in"] for c in checked], float),
                      np.array([c["tokens_out"] for c in checked], float))


def _right(records: list[dict], rows: list[dict]) -> np.ndarray:
    return np.array([a["status"] == "answered" and halueval_right(a["answer"], r["right_answer"])
                     for a, r in zip(records, rows)])


def fit_cascade(x: np.ndarray, right: np.ndarray, fit_idx: np.ndarray, target_accuracy: float, delta: float):
    """The calibrated cascade: logistic P(right) from the small tier's signals `x` and the guaranteed-
    accuracy threshold, both fitted on `fit_idx`. Returns (calibrator or None, method, conf, threshold)."""
    if len(np.unique(right[fit_idx])) == 2:
        calibrator = PlattCalibrator(c=1.0).fit(x[fit_idx], right[fit_idx])
        conf, method = calibrator.predict(x), "logistic (platt, C=1)"
    else:  # one outcome on the fit split (a tiny run): the fit split's share right for every item
        calibrator, method = None, "constant: the fit split's answers are all right or all wrong"
        conf = np.full(len(x), float(right[fit_idx].mean()) if len(fit_idx) else 0.0)
    threshold = GuaranteedAccuracyPolicy(target_accuracy, delta=delta).fit(conf[fit_idx], right[fit_idx])
    return calibrator, method, conf, threshold


def calibration_summary(calibrator, method: str, features: list[str], threshold, target_accuracy: float,
                        delta: float, escalated: int, rows_out: list[dict]) -> dict[str, Any]:
    """The result's "calibration" entry, with the cascade's test AUROC and ECE from its policy row."""
    cascade_row = next(r for r in rows_out if r["policy"] == "calibrated cascade")
    return {"method": method, "features": features, "cv_brier": None,
            "coef": calibrator.coef.tolist() if calibrator else None,
            "intercept": calibrator.intercept if calibrator else None,
            "target_accuracy": target_accuracy, "delta": delta,
            "threshold": None if math.isinf(threshold.value) else threshold.value,
            "threshold_reason": threshold.reason, "escalated": escalated,
            "test_auroc": cascade_row["auroc"], "test_ece": cascade_row["ece"]}


def run_eval_qa(data: str, *, n: int, fit_size: int, data_dir: Path, seed: int = 0, target_accuracy: float = 0.95,
                delta: float = 0.1, knn: int = 10, price_small=None, price_large=None, threads: int = 1,
                root=None, tiers: tuple[TierSpec, TierSpec, TierSpec] | None = None, embed=None, progress=None,
                plot_dir: Path | None = None, max_tokens: int = 160) -> dict[str, Any]:

    started = time.perf_counter()
    name, fit_rows, test_rows = qa_splits(data, n, fit_size, seed, root)
    rows = fit_rows + test_rows
    setup = GenerationEval.of(data_dir, threads, tiers, embed, price_small, price_large)
    price_small, price_large, tiers, embed, cache_dir = (setup.price_small, setup.price_large, setup.tiers,
                                                         setup.embed, setup.cache_dir)
    small, large, verifier = tiers
    version = f"{qa.PROMPT_VERSION}-t{max_tokens}"

    out = {t.name: run_qa_tier(t, rows, setup.answers_file(name, t, version), max_tokens, progress)
           for t in (small, large)}
    ok = np.array([a["status"] != "skipped" and b["status"] != "skipped" for a, b in zip(out[small.name], out[large.name])])
    fit_idx, test_idx = fit_test_indices(ok, len(fit_rows), "no test item could be answered by both tiers (all "
                                                            "longer than the context?)")
    small_right, large_right = _right(out[small.name], rows), _right(out[large.name], rows)
    x, signal_ms = _signals(rows, out[small.name], embed, cache_dir, name)

    calibrator, method, conf, threshold = fit_cascade(x, small_right, fit_idx, target_accuracy, delta)

    test = [rows[i] for i in test_idx]
    checked = _judged(verifier, test, [out[small.name][i] for i in test_idx],
                      setup.answers_file(name, verifier, f"{qa_checks.JUDGE_VERSION}-{version}"), progress)
    p_yes = np.array([c["p_yes"] for c in checked])
    verify_cost = judge_cost(checked, price_small)
    t = outcomes_of(small_right, large_right, out[small.name], out[large.name], test_idx, price_small, price_large,
                    small_extra_ms=signal_ms[test_idx])
    quality = accuracy
    q_vectors, q_ms = embed_cached([r["question"] for r in rows], embed, cache_dir / f"{name}-questions-all-MiniLM-L6-v2.npz")
    fit_wins = ~small_right[fit_idx] & large_right[fit_idx]
    knn_keep = 1.0 - knn_win_rate(q_vectors[fit_idx], fit_wins, q_vectors[test_idx], k=knn)
    cascade_conf = conf[test_idx]
    escalated = ~np.asarray(threshold.accept(cascade_conf), dtype=bool).reshape(-1)
    m = int(escalated.sum())
    policies, rows_out = compare_policies(t, quality, escalated, cascade_conf, knn_keep, p_yes, knn_ms=q_ms[test_idx],
                                          verify_cost=verify_cost, verify_ms=np.array([c["ms"] for c in checked]))
    statuses = {tier.name: {s: sum(out[tier.name][i]["status"] == s for i in test_idx)
                            for s in ("answered", "null", "invalid")} for tier in (small, large)}
    result: dict[str, Any] = {
        "task": "ask", "data": data, "quality_metric": "accuracy (halueval_right)", "seed": seed,
        "sizes": {"test": len(test_idx), "fit": len(fit_idx), "pool": 0, "skipped": int((~ok).sum())},
        "demonstrations": 0, "prompt_version": version,
        "tiers": {"small": {"name": small.name, "model_hash": small.model_hash, "price": vars(price_small),
                            "quality": quality(t.small_pred, t.gold), "answers": statuses[small.name]},
                  "large": {"name": large.name, "model_hash": large.model_hash, "price": vars(price_large),
                            "quality": quality(t.large_pred, t.gold), "calibrator": "none (generated answers)",
                            "how": "in-process llama.cpp, generated", "answers": statuses[large.name]}},
        "calibration": calibration_summary(calibrator, method, FEATURES, threshold, target_accuracy, delta, m,
                                           rows_out),
        "policies": rows_out,
        "curves": curves(policies),
        "model_calls": {tier.name: tier.calls for tier in tiers},
        "seconds": time.perf_counter() - started,
    }
    if plot_dir is not None:
        from evaluation.report import write_plots

        result["plots"] = write_plots(result, policies, t, "accuracy", cascade_conf, p_yes, plot_dir)
    return result
