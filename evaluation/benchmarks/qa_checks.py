"""Measurements of the ask task's hallucination checks (`cascade bench qa-checks`).

(a) Correctness of the small model's own answers. Tier 1 answers HaluEval questions (the row's
    `knowledge` as the one passage) and PubMedQA questions (its CONTEXTS as passages) exactly as the
    ask task does (agents.qa.draft). Rules for right: HaluEval, the normalised `right_answer` is
    contained in the normalised answer or their token F1 is >= 0.5; PubMedQA, the answer's stance
    (its first yes/no/maybe word, "not" counting as no; an answer with none of them counts as yes, a
    claim restating the question) equals `final_decision`. Null and invalid answers are counted and
    left out. Reported: AUROC for right of the support score, each of its signals, the answer-token
    confidence and the combined confidence (answer-token confidence x support score).
(b) HaluEval's own test: per row, its right and its hallucinated answer against the same knowledge.
    Balanced accuracy of telling them apart, for the support check and for two baselines (answer
    length in words; share of the answer's words found in the knowledge). Rows are split into a fit
    half and a test half; every threshold (and its direction) is fitted on the fit half, and the
    support model's logistic weights too (saved with --save-weights as the shipped artifact).

The rows of (a) and (b) are disjoint (one seeded permutation of HaluEval, cut in two).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from agents import qa, qa_checks
from agents.errors import InvalidInputError
from agents.qa_checks import LogisticWeights, SupportModel, SupportSignals

from orchestrator.core.config import LlamaCppTier, load_settings
from evaluation.datasets import data_root
from orchestrator.core.models import resolve_model_path

WITH_JUDGE = ["similarity", "grounding", "judge_logodds"]
WITHOUT_JUDGE = ["similarity", "grounding"]
MODEL_ONLY = ["similarity", "judge_logodds"]  # no lexical signal: what the models add beyond word overlap


# -- correctness rules and baselines ------------------------------------------------------------------

def _tokens(text: str) -> list[str]:
    text = re.sub(r"\b(a|an|the)\b", " ", text.casefold())
    return re.findall(r"\w+", text)


def token_f1(prediction: str, gold: str) -> float:
    p, g = _tokens(prediction), _tokens(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def halueval_right(answer: str, gold: str) -> bool:
    norm = " ".join(_tokens(gold))
    return (bool(norm) and norm in " ".join(_tokens(answer))) or token_f1(answer, gold) >= 0.5


def stance(answer: str) -> str:
    for word in re.findall(r"\w+", answer.casefold()):
        if word in ("yes", "no", "maybe"):
            return word
        if word == "not":
            return "no"
    return "yes"


def answer_length(answer: str) -> float:
    return float(len(answer.split()))


def word_share(answer: str, knowledge: str) -> float:
    """Share of the answer's words (all of them) found among the knowledge's words."""
    found = set(qa_checks.words(knowledge))
    answer_words = qa_checks.words(answer)
    return sum(w in found for w in answer_words) / len(answer_words) if answer_words else 0.0


# -- fitting and scoring ------------------------------------------------------------------------------

def fit_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, int]:
    """The threshold and direction (+1: high means positive, -1: low does) with the best balanced
    accuracy on these (fit) scores."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    best = (-1.0, 0.0, 1)
    for sign in (1, -1):
        values = np.unique(sign * s)
        for t in np.concatenate([values, [np.inf]]):
            accuracy = balanced_accuracy_score(y, sign * s >= t)
            if accuracy > best[0]:
                best = (accuracy, float(sign * t), sign)
    return best[1], best[2]


def apply_threshold(scores: Sequence[float], threshold: float, sign: int) -> np.ndarray:
    return sign * np.asarray(scores, dtype=float) >= sign * threshold


def fit_logistic(rows: list[dict], names: list[str]) -> LogisticWeights:
    """Logistic weights of `names` for the label `right`, on the rows that have every one of them.
    Each signal may only raise the support score: a signal fitted with a negative weight (it ranks
    the wrong way on the fit data, e.g. through the answers' form) is dropped (weight 0) and the rest refitted."""
    rows = [r for r in rows if all(r.get(n) is not None for n in names)]
    y = np.array([r["right"] for r in rows], dtype=int)
    kept, coef, intercept = list(names), {}, 0.0
    while kept:
        fitted = LogisticRegression(C=1.0, max_iter=1000).fit(np.array([[r[n] for n in kept] for r in rows]), y)
        coef, intercept = dict(zip(kept, fitted.coef_[0])), float(fitted.intercept_[0])
        worst = min(kept, key=coef.get)
        if coef[worst] >= 0:
            break
        kept.remove(worst)
        coef = {}
    if not kept:  # no signal helps: the base rate alone
        intercept = float(np.log(y.mean() / (1 - y.mean())))
    return LogisticWeights(features=names, coef=[float(coef.get(n, 0.0)) for n in names], intercept=intercept)


def logistic_score(weights: LogisticWeights, row: dict) -> float | None:
    if any(row.get(n) is None for n in weights.features):
        return None
    z = weights.intercept + sum(c * row[n] for c, n in zip(weights.coef, weights.features))
    return 1 / (1 + math.exp(-z))


def _auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    y = np.asarray(labels, dtype=bool)
    return round(float(roc_auc_score(y, scores)), 4) if 0 < y.sum() < y.size else None


# -- data ---------------------------------------------------------------------------------------------

def halueval_rows(root: str | Path | None = None) -> list[dict]:
    path = data_root(root) / "halueval_qa" / "qa_data.jsonl"
    if not path.is_file():
        raise InvalidInputError(f"HaluEval not found at {path}; set CASCADE_EVAL_DATA to the shared data directory")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pubmedqa_items(n: int, seed: int, root: str | Path | None = None) -> list[dict]:
    path = data_root(root) / "pubmedqa" / "ori_pqal.json"
    if not path.is_file():
        raise InvalidInputError(f"PubMedQA not found at {path}; set CASCADE_EVAL_DATA to the shared data directory")
    data = json.loads(path.read_text(encoding="utf-8"))
    ids = sorted(data)
    chosen = np.random.default_rng(seed).permutation(len(ids))[:n]
    return [{"id": ids[i], "question": data[ids[i]]["QUESTION"], "passages": list(data[ids[i]]["CONTEXTS"]),
             "gold": data[ids[i]]["final_decision"]} for i in chosen]


# -- the run ------------------------------------------------------------------------------------------

def _backend(config: Path | None):
    from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

    settings = load_settings(config)
    tier = next((t for t in settings.tiers if isinstance(t, LlamaCppTier)), None)
    if tier is None:
        raise InvalidInputError("the ladder has no llama_cpp tier: the judge needs a local model")
    path = resolve_model_path(tier.model_path, settings.data_dir, tier.name)
    # one thread: the benchmark shares the machine with other work and must not slow it
    return LlamaCppBackend(LlamaCppOptions(model_path=path, n_ctx=tier.n_ctx, n_threads=1)), tier.model_path


def _signals(judge_backend, embed, question: str, answer: str, passages: list[str]) -> dict[str, float | None]:
    found = qa_checks.signals(question, answer, passages, embed, judge_backend)
    return {**qa_checks.features(found), "judge": found.judge}


def run(halueval_answers: int = 200, pubmed_answers: int = 100, pairs: int = 500, seed: int = 0,
        config: Path | None = None, save_weights: bool = False, max_tokens: int = 160,
        progress: Callable[[str, int], Callable[[], None]] | None = None) -> dict:
    """Run (b) then (a) (all judge calls of a phase share the judge's cached prefix) and return the figures.
    `progress(description, total)` returns a function to call once per item done."""
    from agents.retrieval import Embedder

    started = time.perf_counter()
    step = progress or (lambda _d, _n: lambda: None)
    rows = halueval_rows()
    order = np.random.default_rng(seed).permutation(len(rows))
    if pairs + halueval_answers > len(rows):
        raise InvalidInputError(f"HaluEval has {len(rows)} rows; {pairs} pairs + {halueval_answers} answers need more")
    pair_rows = [rows[i] for i in order[:pairs]]
    answer_rows = [rows[i] for i in order[pairs:pairs + halueval_answers]]
    backend, model_name = _backend(config)
    embed = Embedder().embed

    # (b) right and hallucinated answer of each row; fit half / test half by row
    pair_data = []
    tick = step("judging HaluEval pairs", 2 * len(pair_rows))
    for row in pair_rows:
        for key, right in (("right_answer", True), ("hallucinated_answer", False)):
            sig = _signals(backend, embed, row["question"], row[key], [row["knowledge"]])
            pair_data.append({**sig, "right": right, "length": answer_length(row[key]),
                              "word_share": word_share(row[key], row["knowledge"])})
            tick()
    half = 2 * (len(pair_rows) // 2)
    fit, test = pair_data[:half], pair_data[half:]
    model = SupportModel(version=f"support-{qa_checks.JUDGE_VERSION}-s{seed}",
                         with_judge=fit_logistic(fit, WITH_JUDGE),
                         without_judge=fit_logistic(fit, WITHOUT_JUDGE),
                         fitted_on=f"HaluEval QA, {len(fit)} answers ({len(fit) // 2} rows, seed {seed}); judge {model_name}")
    model_only = fit_logistic(fit, MODEL_ONLY)
    for d in pair_data:
        d["support"] = model.score(SupportSignals(similarity=d["similarity"], grounding=d["grounding"],
                                                  judge=d["judge"]))
        d["model_only"] = logistic_score(model_only, d)
    measure_b = {name: _split_metrics(fit, test, name) for name in
                 ("support", "similarity", "grounding", "judge", "model_only", "length", "word_share")}

    # (a) the model's own answers: generate all first, then judge (each phase keeps its prefix cached)
    items = [{"source": "halueval", "question": r["question"], "passages": [r["knowledge"]], "gold": r["right_answer"]}
             for r in answer_rows] + [{"source": "pubmedqa", **p} for p in pubmedqa_items(pubmed_answers, seed)]
    tick = step("generating answers", len(items))
    for item in items:
        try:
            item["draft"] = qa.draft(backend, item["question"], item["passages"], max_tokens)
        except InvalidInputError as exc:
            item["skipped"] = str(exc)
        tick()
    tick = step("judging generated answers", len(items))
    answered = []
    for item in items:
        output = item.get("draft").output if "draft" in item else None
        cited = sorted({c.passage for c in output.citations if 1 <= c.passage <= len(item["passages"])}) if output else []
        if output is not None and output.answer is not None and cited:
            sig = _signals(backend, embed, item["question"], output.answer, [item["passages"][i - 1] for i in cited])
            support = model.score(SupportSignals(similarity=sig["similarity"], grounding=sig["grounding"],
                                                 judge=sig["judge"]))
            right = (halueval_right(output.answer, item["gold"]) if item["source"] == "halueval"
                     else stance(output.answer) == item["gold"])
            confidence = item["draft"].confidence
            answered.append({"source": item["source"], "answer": output.answer, "right": right, **sig,
                             "support": support, "confidence": confidence,
                             "combined": None if confidence is None else confidence * support})
        tick()
    outcomes = Counter("skipped" if "skipped" in i else "invalid" if i["draft"].output is None
                       else "null" if i["draft"].output.answer is None else "answered" for i in items)
    measure_a = {source: _correctness(answered, source) for source in ("halueval", "pubmedqa", "all")}
    if save_weights:
        from orchestrator.core.qa_support import save_support_model

        save_support_model(model)
    return {"model": model_name, "seed": seed, "threads": 1, "minutes": round((time.perf_counter() - started) / 60, 1),
            "support_model": model.model_dump(), "model_only_weights": model_only.model_dump(),
            "weights_saved": save_weights,
            "a": {"items": {"halueval": len(answer_rows), "pubmedqa": pubmed_answers}, "max_tokens": max_tokens, "outcomes": dict(outcomes),
                  "metrics": measure_a, "answers": answered},
            "b": {"rows": len(pair_rows), "fit_answers": len(fit), "test_answers": len(test), "metrics": measure_b,
                  "answers": pair_data}}


def _split_metrics(fit: list[dict], test: list[dict], name: str) -> dict:
    """Threshold fitted on `fit`, balanced accuracy and AUROC on `test` (judge-less rows left out)."""
    fit = [d for d in fit if d.get(name) is not None]
    test = [d for d in test if d.get(name) is not None]
    threshold, sign = fit_threshold([d[name] for d in fit], [d["right"] for d in fit])
    y = [d["right"] for d in test]
    predicted = apply_threshold([d[name] for d in test], threshold, sign)
    auroc = _auroc([sign * d[name] for d in test], y)
    return {"balanced_accuracy": round(float(balanced_accuracy_score(y, predicted)), 4), "auroc": auroc,
            "threshold": round(threshold, 4), "direction": "higher is right" if sign > 0 else "lower is right",
            "n_test": len(test)}


def _correctness(answered: list[dict], source: str) -> dict:
    rows = [d for d in answered if source == "all" or d["source"] == source]
    y = [d["right"] for d in rows]
    result = {"n": len(rows), "right": int(sum(y))}
    for name in ("support", "similarity", "grounding", "judge", "confidence", "combined"):
        scored = [(d[name], d["right"]) for d in rows if d[name] is not None]
        result[name] = _auroc([s for s, _ in scored], [r for _, r in scored]) if scored else None
    return result
