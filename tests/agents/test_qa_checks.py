"""The support check's logic on hand-made cases: the judge's P(yes) from label scores, lexical
grounding, the fitted combination, the benchmark's correctness rules, baselines and threshold fits.
A recording fake scores labels; a bag-of-words embedding stands in for MiniLM (the real models run
in tests/agents/test_qa_checks_real.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agents import qa, qa_checks
from agents.backends import FakeGeneratingBackend, FakeScoringBackend
from agents.errors import InvalidInputError
from agents.qa_checks import LogisticWeights, SupportModel, SupportSignals
from evaluation.benchmarks import qa_checks as qa_bench
from orchestrator.core.qa_support import load_support_model

OBEROI = "The Oberoi Group is a hotel company with its head office in Delhi."
QUESTION = "Where is the head office of the Oberoi Group?"
MODEL = SupportModel(version="test",
                     with_judge=LogisticWeights(features=["similarity", "grounding", "judge_logodds"],
                                                coef=[1.0, 2.0, 1.0], intercept=-2.0),
                     without_judge=LogisticWeights(features=["similarity", "grounding"], coef=[1.0, 2.0], intercept=-2.0))


def bag_of_words(texts: list[str]) -> np.ndarray:
    vectors = np.zeros((len(texts), 512))
    for row, text in zip(vectors, texts):
        for w in qa_checks.words(text):
            row[sum(map(ord, w)) % 512] += 1.0
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


class GeneratingScorer(FakeGeneratingBackend):
    """A local model's fake: generates queued texts and scores labels with queued log-probs."""

    def __init__(self, outputs, scores):
        super().__init__(outputs)
        self.scorer = FakeScoringBackend(scores)

    def score(self, messages, item, continuations):
        return self.scorer.score(messages, item, continuations)


class TooLongScorer:
    def score(self, messages, item, continuations):
        raise InvalidInputError("the prompt is 4000 tokens; it exceeds this model's context")


def test_the_judge_is_p_yes_from_the_two_label_scores_and_sees_the_item_as_data():
    backend = FakeScoringBackend([{"yes": -0.2, "no": -1.8}])
    p = qa_checks.judge(backend, QUESTION, "Delhi", [OBEROI])
    assert p == pytest.approx(1 / (1 + math.exp(-1.6)))
    [call] = backend.calls
    assert call["continuations"] == ["yes", "no"]
    assert OBEROI in call["item"] and "Answer: Delhi" in call["item"] and QUESTION in call["item"]
    assert all(OBEROI not in m["content"] for m in call["messages"])  # the fixed prefix never holds the item
    assert [m["content"] for m in call["messages"] if m["role"] == "assistant"] == ["yes", "no"]


def test_grounding_counts_content_words_found_in_the_passages():
    assert qa_checks.grounding("Delhi", [OBEROI]) == 1.0
    assert qa_checks.grounding("the head office in Mumbai", [OBEROI]) == pytest.approx(2 / 3)
    assert qa_checks.grounding("Mumbai", [OBEROI]) == 0.0
    assert qa_checks.grounding("It is in Delhi", [OBEROI]) == 1.0  # stopwords say nothing
    assert qa_checks.grounding("yes", ["Answer 'yes'."]) == 0.0  # nothing to ground, whatever the passage says
    assert qa_checks.grounding("?!", [OBEROI]) == 0.0


def test_the_support_model_uses_the_judge_when_there_is_one_and_the_fitted_variant_without():
    with_judge = SupportSignals(similarity=0.5, grounding=1.0, judge=0.8)
    assert MODEL.score(with_judge) == pytest.approx(1 / (1 + math.exp(-(0.5 + 2.0 + math.log(4.0) - 2.0))))
    without = SupportSignals(similarity=0.5, grounding=1.0)
    assert MODEL.score(without) == pytest.approx(1 / (1 + math.exp(-0.5)))
    sure_no = SupportSignals(similarity=0.5, grounding=1.0, judge=0.0)  # clipped: finite log-odds
    assert 0.0 < MODEL.score(sure_no) < MODEL.score(without)


def test_support_check_records_every_signal_and_fails_an_unsupported_answer():
    cite = [qa.Citation(passage=1, quote="head office in Delhi")]
    judge = FakeScoringBackend([{"yes": -0.1, "no": -2.5}, {"yes": -2.5, "no": -0.1}])
    kept = qa.support_check(QUESTION, qa.QAOutput(answer="Delhi", citations=cite), [OBEROI], bag_of_words,
                            0.5, MODEL, judge)
    invented = qa.support_check(QUESTION, qa.QAOutput(answer="It moved to Mumbai in 1990.", citations=cite),
                                [OBEROI], bag_of_words, 0.5, MODEL, judge)
    assert kept.passed and not invented.passed and kept.score > invented.score
    assert "support score (test)" in kept.reason and "judge P(yes) 0.917" in kept.reason
    assert "grounding 1.000" in kept.reason and "grounding 0.000" in invented.reason
    assert "< 0.500" in invented.reason
    # a prompt beyond the judge's context: the check goes on with the judge-less weights and says so
    skipped = qa.support_check(QUESTION, qa.QAOutput(answer="Delhi", citations=cite), [OBEROI], bag_of_words,
                               0.5, MODEL, TooLongScorer())
    assert "judge skipped: the prompt is 4000 tokens" in skipped.reason
    assert skipped.score == pytest.approx(MODEL.score(qa_checks.signals(QUESTION, "Delhi", [OBEROI], bag_of_words)))


def test_a_local_tier_is_its_own_judge_and_a_remote_one_has_none():
    reply = json.dumps({"answer": "Delhi", "citations": [{"passage": 1, "quote": "head office in Delhi"}]})
    local = GeneratingScorer([reply], [{"yes": -0.1, "no": -2.5}])
    output = qa.answer(local, {"text": QUESTION, "passages": [OBEROI]}, embed=bag_of_words, support_model=MODEL)
    [schema, span, support] = output.checks
    assert schema.passed and span.passed and support.passed and "judge P(yes)" in support.reason
    assert len(local.calls) == 1 and local.scorer.calls[0]["continuations"] == ["yes", "no"]
    no_scoring = FakeGeneratingBackend([reply])
    support = qa.answer(no_scoring, {"text": QUESTION, "passages": [OBEROI]}, embed=bag_of_words,
                        support_model=MODEL).checks[2]
    assert "no local model to judge" in support.reason


def test_the_judge_is_not_run_when_its_fitted_weight_is_zero():
    reply = json.dumps({"answer": "Delhi", "citations": [{"passage": 1, "quote": "head office in Delhi"}]})
    unweighted = MODEL.model_copy(update={"with_judge": LogisticWeights(
        features=["similarity", "grounding", "judge_logodds"], coef=[1.0, 2.0, 0.0], intercept=-2.0)})
    assert MODEL.uses_judge and not unweighted.uses_judge
    local = GeneratingScorer([reply], [{"yes": -0.1, "no": -2.5}])
    support = qa.answer(local, {"text": QUESTION, "passages": [OBEROI]}, embed=bag_of_words,
                        support_model=unweighted).checks[2]
    assert local.scorer.calls == [] and support.passed and "judge not run: it has no weight" in support.reason


def test_correctness_rules_of_the_benchmark():
    assert qa_bench.halueval_right("It is Arthur's Magazine.", "Arthur's Magazine")
    assert qa_bench.halueval_right("the Delhi head office", "Delhi")
    assert not qa_bench.halueval_right("First for Women was started first.", "Arthur's Magazine")
    assert qa_bench.token_f1("Walt Disney Pictures", "Walt Disney") == pytest.approx(0.8)
    assert qa_bench.halueval_right("Walt Disney Pictures", "Walt Disney")
    assert [qa_bench.stance(a) for a in ("Yes.", "No, it does not.", "It does not help.", "Maybe", "It helps.")] == [
        "yes", "no", "no", "maybe", "yes"]


def test_baselines_on_hand_made_answers():
    knowledge = "Arthur's Magazine (1844-1846) was an American literary periodical."
    assert qa_bench.answer_length("First for Women was started first.") == 6.0
    assert qa_bench.word_share("Arthur's Magazine", knowledge) == 1.0
    assert qa_bench.word_share("First for Women was started first.", knowledge) == pytest.approx(1 / 6)
    assert qa_bench.word_share("", knowledge) == 0.0


def test_thresholds_are_fitted_with_their_direction_and_applied_unchanged():
    lengths, right = [1, 2, 2, 3, 7, 8, 9, 3], [True, True, True, True, False, False, False, False]
    threshold, sign = qa_bench.fit_threshold(lengths, right)
    assert sign == -1 and 3 <= threshold < 7  # shorter is right here
    assert qa_bench.apply_threshold([1, 10], threshold, sign).tolist() == [True, False]
    threshold, sign = qa_bench.fit_threshold([0.9, 0.8, 0.2, 0.1], [True, True, False, False])
    assert sign == 1 and 0.2 < threshold <= 0.8


def test_logistic_fit_weighs_the_informative_signal_and_skips_rows_without_it():
    rng = np.random.default_rng(0)
    rows = [{"similarity": float(rng.random()), "grounding": float(g), "judge_logodds": None if i == 0 else 0.0,
             "right": bool(g > 0.5)} for i, g in enumerate(rng.random(60))]
    weights = qa_bench.fit_logistic(rows, ["similarity", "grounding"])
    assert weights.coef[1] > 2 * abs(weights.coef[0])
    assert qa_bench.fit_logistic(rows, ["grounding", "judge_logodds"]).features == ["grounding", "judge_logodds"]
    assert qa_bench.logistic_score(weights, {"similarity": 0.5, "grounding": 1.0}) > 0.5
    assert qa_bench.logistic_score(weights, {"similarity": 0.5, "grounding": None}) is None
    # a signal that ranks the wrong way is dropped, never given a negative weight
    for r in rows:
        r["judge_logodds"] = -3.0 if r["right"] else 3.0
    weights = qa_bench.fit_logistic(rows, ["grounding", "judge_logodds"])
    assert weights.coef[1] == 0.0 and weights.coef[0] > 0


def test_the_shipped_weights_load_with_both_variants():
    model = load_support_model()
    assert model.with_judge.features == qa_bench.WITH_JUDGE and model.without_judge.features == qa_bench.WITHOUT_JUDGE
    assert "HaluEval" in model.fitted_on
