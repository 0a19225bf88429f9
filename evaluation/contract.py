"""`cascade eval --task contract`: the contract-review family (CUAD), every policy on the same cached answers.

An item is a (contract, clause category) pair. Data: `--data cuad` (CUAD v1, the categories in
CATEGORIES, gold presence from the `-Answer` column) or a JSONL file of {"contract": text,
"category": a known category name, "present": true/false} rows (rows with the same contract text
form one contract). Fit and test pairs are split by contract (one seeded permutation of the
contracts), so no contract lends pairs to both; the last contract of a split may give fewer pairs.

Retrieval is the product's own (orchestrator.core.contract_review.review_contract: chunking, MiniLM
ranking, PASSAGES chunks per category), run once per contract with a `run` that only records what
each category is shown; the passages are cached, and their embedding time is shared by all policies.
Each tier (SmolLM2, then Gemma-3-270M, in-process) answers each pair once with the contract task's
prompt and grammar (agents.contracts.review); present, clause, confidence, span check, tokens and
milliseconds are cached per tier, keyed by data set, tier, model hash, prompt version and the
pair's prompt content (category and passages), so a re-run replays them without a model call.

Quality: presence accuracy against CUAD's gold answer. An answer is right when it is valid, its
`present` equals the gold, and, when it says present, its clause passes the span check (a clause
not in the shown passages is a hallucination, wrong whatever the gold). An invalid output is wrong.
With the local grammar a tier can only quote the passages, so the span check rarely fails here.

Calibrated cascade: a logistic calibrator over the small tier's signals (its decision confidence as
a logit, whether it said present, the span check, the best passage's retrieval score), fitted on
the fit split, thresholded by the guaranteed-accuracy policy (as eval_qa). Self-verification: as
eval_qa, SmolLM2's support judge P(yes) (qa_checks.judge) on its own answer: the category's question,
the shown passages and its clause, or for an absent answer the sentence NO_CLAUSE. Prompt-only
router: neighbours' win rate of the large tier from MiniLM embeddings of the prompt's content, the
category's question then the passages (MiniLM reads its first 256 word pieces: the question and the
start of the best passage), as a router that sees the prompt but no answer would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logit

from agents import contracts, qa_checks
from agents.contract_categories import validate_categories
from agents.errors import InvalidInputError
from agents.results import CascadeResult
from evaluation.policies import accuracy, compare_policies, curves, knn_win_rate

from orchestrator.core.contract_review import PASSAGES, review_contract
from evaluation.cuad import load_cuad
from evaluation.qa import calibration_summary, fit_cascade, judge_cost, outcomes_of
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

__all__ = ["CATEGORIES", "FEATURES", "NO_CLAUSE", "Pair", "contract_splits", "right", "run_eval_contract"]

# Common, answerable questions with a spread of presence rates in CUAD (most to fewest contracts).
CATEGORIES = ("Governing Law", "Cap on Liability", "Termination for Convenience", "Non-Compete")
FEATURES = ["decision_logit", "said_present", "span_ok", "retrieval_score"]
NO_CLAUSE = "No clause of this category is in the passages."
_EXPECTED = '{"contract", "category", "present"}'


@dataclasses.dataclass(frozen=True)
class Pair:
    contract: str  # sha256 of the contract's text
    category: str
    present: bool  # the gold answer


def _jsonl(path: Path) -> tuple[dict[str, str], list[Pair]]:
    texts, pairs = {}, []
    for where, row in jsonl_objects(path, _EXPECTED):
        missing = [f for f in ("contract", "category", "present") if row.get(f) is None or row.get(f) == ""]
        if missing:
            raise InvalidInputError(f"{where}: not a contract row, missing {', '.join(missing)}; --task contract "
                                    f"needs {_EXPECTED} per line")
        if not isinstance(row["contract"], str) or not row["contract"].strip():
            raise InvalidInputError(f"{where}: field contract must be the contract's text")
        if not isinstance(row["present"], bool):
            raise InvalidInputError(f"{where}: field present must be true or false, got {row['present']!r}")
        try:
            category = validate_categories([row["category"]])[0]
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: field category: {exc.message}") from None
        digest = hashlib.sha256(row["contract"].encode()).hexdigest()
        texts[digest] = row["contract"]
        pairs.append(Pair(digest, category, row["present"]))
    return texts, list(dict.fromkeys(pairs))


def contract_splits(data: str, n: int, fit_size: int, seed: int = 0, root=None,
                    categories=CATEGORIES) -> tuple[str, dict[str, str], list[Pair], list[Pair]]:
    """(name, contract texts by sha256, fit pairs, test pairs): whole contracts in one seeded order,
    fit pairs from the first, test pairs from the next; only the chosen contracts are read."""
    if data == "cuad":
        name, cuad, categories = "cuad", load_cuad(root).contracts, validate_categories(list(categories))
        order = [cuad[i] for i in np.random.default_rng(seed).permutation(len(cuad))]
        groups = [(c.text, [(cat, c.gold[cat].present) for cat in categories]) for c in order]
    else:
        path = Path(data).expanduser()
        if path.suffix != ".jsonl":
            raise InvalidInputError(f"--task contract evaluates contract review: --data cuad or a JSONL file of "
                                    f"{_EXPECTED} rows; {data!r} is not a contract data set")
        name, (texts, pairs) = path.stem, _jsonl(path)
        ids = list(dict.fromkeys(p.contract for p in pairs))
        ids = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
        groups = [(lambda c=c: texts[c], [(p.category, p.present) for p in pairs if p.contract == c]) for c in ids]
    total, chosen, splits = sum(len(gold) for _, gold in groups), {}, [[], []]
    for size, split in zip((fit_size, n), splits):
        while len(split) < size and groups:
            read, gold = groups.pop(0)
            text = read()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in chosen:  # the same text filed twice is one contract: never in both splits
                continue
            chosen[digest] = text
            split += [Pair(digest, cat, present) for cat, present in gold][:size - len(split)]
        if len(split) < size:
            raise InvalidInputError(f"{data} has {total} (contract, category) pairs; --n {n} plus --fit-size "
                                    f"{fit_size} need more (whole contracts go to one split)")
    return name, chosen, splits[0], splits[1]


def _retrieved(texts: dict[str, str], pairs: list[Pair], embed, cache_file: Path, k: int) -> list[dict]:
    """Per pair: the passages review_contract shows for its category, their scores and the ms spent."""
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    keys = [item_key(p.contract, p.category, str(k)) for p in pairs]
    shown: dict[str, dict] = {}

    def record(task, *, category, passages, sources, **_) -> CascadeResult:  # stands in for Cascade.run
        shown[category] = {"passages": passages, "scores": [s["score"] for s in sources]}
        return CascadeResult(run_id="", task=task, outcome="failed", answer=None, confidence=None, tier_name=None,
                             reason="retrieval only", attempts=[], latency_ms=0.0, cost=0.0)
    missing = list(dict.fromkeys(p.contract for p, key in zip(pairs, keys) if key not in cache))
    for digest in missing:
        categories = list(dict.fromkeys(p.category for p in pairs if p.contract == digest))
        started = time.perf_counter()
        review_contract(record, embed, texts[digest], categories, k)
        ms = (time.perf_counter() - started) * 1000 / len(categories)  # one chunk embedding, shared
        cache.update({item_key(digest, c, str(k)): {**shown[c], "ms": ms} for c in categories})
    if missing:
        cache_file.with_suffix(".tmp").write_text(json.dumps(cache))
        cache_file.with_suffix(".tmp").replace(cache_file)
    return [cache[key] for key in keys]


def run_contract_tier(tier: TierSpec, pairs: list[Pair], shown: list[dict], cache_file: Path, embed,
                      max_tokens: int = 160, progress=None) -> list[dict]:
    """Per pair: status (present / absent / invalid / skipped), clause, confidence, span check, tokens, ms."""
    def work(backend, i):
        out = contracts.review(backend, {"category": pairs[i].category, "passages": shown[i]["passages"]},
                               embed=embed, max_tokens=max_tokens)
        said = json.loads(out.answer) if out.answer is not None else None
        checks = {c.name: c.passed for c in out.checks}
        return {"status": "invalid" if said is None else "present" if said["present"] else "absent",
                "clause": said and said["clause"], "text": out.raw_output, "confidence": out.confidence,
                "span_ok": bool(checks.get("span")), "tokens_in": out.tokens_in, "tokens_out": out.tokens_out}
    keys = [item_key(p.category, *s["passages"]) for p, s in zip(pairs, shown)]
    return cached_records(tier, cache_file, keys, work, progress)


def right(record: dict, gold_present: bool) -> bool:
    """The quality rule: a valid answer with the gold presence, whose clause (if present) passes the span check."""
    if record["status"] not in ("present", "absent"):
        return False
    said = record["status"] == "present"
    return said == gold_present and (not said or bool(record.get("span_ok")))


def _judged(verifier: TierSpec, pairs, shown, answers, cache_file: Path, progress) -> list[dict]:
    said = [a["clause"] if a["status"] == "present" else NO_CLAUSE for a in answers]

    def work(backend, i):
        recording = RecordingScorer(backend)
        p = qa_checks.judge(recording, contracts.question(pairs[i].category), said[i], shown[i]["passages"])
        return {"p_yes": p, "tokens_in": recording.last.tokens_in, "tokens_out": recording.last.tokens_out}
    todo = [i for i, a in enumerate(answers) if a["status"] in ("present", "absent")]
    keys = [item_key(pairs[i].category, *shown[i]["passages"], said[i]) for i in todo]
    judged = dict(zip(todo, cached_records(verifier, cache_file, keys, lambda b, j: work(b, todo[j]), progress)))
    none = {"p_yes": 0.0, "tokens_in": 0, "tokens_out": 0, "ms": 0.0}  # an invalid answer: nothing to verify
    return [{**none, **judged[i]} if judged.get(i, {}).get("p_yes") is not None else none for i in range(len(answers))]


def _signals(small: list[dict], shown: list[dict]) -> np.ndarray:
    x = np.zeros((len(small), len(FEATURES)))
    for i, (a, s) in enumerate(zip(small, shown)):
        conf = a.get("confidence") if a["status"] in ("present", "absent") else None
        x[i] = [logit(np.clip(conf if conf is not None else 0.0, 1e-4, 1 - 1e-4)), a["status"] == "present",
                bool(a.get("span_ok")), max(s["scores"], default=0.0)]
    return x


def run_eval_contract(data: str, *, n: int, fit_size: int, data_dir: Path, seed: int = 0,
                      target_accuracy: float = 0.95, delta: float = 0.1, knn: int = 10, price_small=None,
                      price_large=None, threads: int = 1, root=None, tiers: tuple[TierSpec, TierSpec, TierSpec] | None = None,
                      embed=None, progress=None, plot_dir: Path | None = None, max_tokens: int = 160,
                      categories=CATEGORIES) -> dict[str, Any]:

    started = time.perf_counter()
    name, texts, fit_pairs, test_pairs = contract_splits(data, n, fit_size, seed, root, categories)
    pairs = fit_pairs + test_pairs
    setup = GenerationEval.of(data_dir, threads, tiers, embed, price_small, price_large)
    price_small, price_large, tiers, embed, cache_dir = (setup.price_small, setup.price_large, setup.tiers,
                                                         setup.embed, setup.cache_dir)
    small, large, verifier = tiers
    version = f"{contracts.PROMPT_VERSION}-t{max_tokens}"

    shown = _retrieved(texts, pairs, embed, cache_dir / f"{name}-contract-passages-all-MiniLM-L6-v2.json", PASSAGES)
    out = {t.name: run_contract_tier(t, pairs, shown, setup.answers_file(name, t, version), embed, max_tokens, progress)
           for t in (small, large)}
    ok = np.array([a["status"] != "skipped" and b["status"] != "skipped" for a, b in zip(out[small.name], out[large.name])])
    fit_idx, test_idx = fit_test_indices(ok, len(fit_pairs), "no test pair could be answered by both tiers (all "
                                                             "longer than the context?)")
    small_right, large_right = (np.array([right(a, p.present) for a, p in zip(out[t.name], pairs)]) for t in (small, large))
    calibrator, method, conf, threshold = fit_cascade(_signals(out[small.name], shown), small_right, fit_idx,
                                                      target_accuracy, delta)
    test = [pairs[i] for i in test_idx]
    checked = _judged(verifier, test, [shown[i] for i in test_idx], [out[small.name][i] for i in test_idx],
                      setup.answers_file(name, verifier, f"{qa_checks.JUDGE_VERSION}-{version}"), progress)
    p_yes = np.array([c["p_yes"] for c in checked])
    verify_cost = judge_cost(checked, price_small)
    t = outcomes_of(small_right, large_right, out[small.name], out[large.name], test_idx, price_small, price_large)
    t = dataclasses.replace(t, shared_ms=np.array([shown[i]["ms"] for i in test_idx]))  # retrieval: every policy's
    prompts = [f"{contracts.question(p.category)}\n{' '.join(s['passages'])}" for p, s in zip(pairs, shown)]
    vectors, knn_ms = embed_cached(prompts, embed, cache_dir / f"{name}-contract-prompts-all-MiniLM-L6-v2.npz")
    fit_wins = ~small_right[fit_idx] & large_right[fit_idx]
    knn_keep = 1.0 - knn_win_rate(vectors[fit_idx], fit_wins, vectors[test_idx], k=knn)
    escalated = ~np.asarray(threshold.accept(conf[test_idx]), dtype=bool).reshape(-1)
    policies, rows_out = compare_policies(t, accuracy, escalated, conf[test_idx], knn_keep, p_yes,
                                          knn_ms=knn_ms[test_idx], verify_cost=verify_cost,
                                          verify_ms=np.array([c["ms"] for c in checked]))
    statuses = {tier.name: {s: sum(out[tier.name][i]["status"] == s for i in test_idx)
                            for s in ("present", "absent", "invalid")} for tier in (small, large)}
    result: dict[str, Any] = {
        "task": "contract", "data": data,
        "quality_metric": "presence accuracy vs CUAD gold (a present clause failing the span check is wrong)",
        "seed": seed, "categories": list(dict.fromkeys(p.category for p in pairs)),
        "sizes": {"test": len(test_idx), "fit": len(fit_idx), "pool": 0, "skipped": int((~ok).sum()),
                  "test_contracts": len({p.contract for p in test}), "gold_present": int(sum(p.present for p in test))},
        "demonstrations": 0, "prompt_version": version, "passages": PASSAGES,
        "tiers": {"small": {"name": small.name, "model_hash": small.model_hash, "price": vars(price_small),
                            "quality": accuracy(t.small_pred, t.gold), "answers": statuses[small.name]},
                  "large": {"name": large.name, "model_hash": large.model_hash, "price": vars(price_large),
                            "quality": accuracy(t.large_pred, t.gold), "calibrator": "none (generated answers)",
                            "how": "in-process llama.cpp, generated", "answers": statuses[large.name]}},
        "calibration": calibration_summary(calibrator, method, FEATURES, threshold, target_accuracy, delta,
                                           int(escalated.sum()), rows_out),
        "policies": rows_out,
        "curves": curves(policies),
        "model_calls": {tier.name: tier.calls for tier in tiers},
        "seconds": time.perf_counter() - started,
    }
    if plot_dir is not None:
        from evaluation.report import write_plots

        result["plots"] = write_plots(result, policies, t, "accuracy", conf[test_idx], p_yes, plot_dir)
    return result
