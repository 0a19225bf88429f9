"""The issue-8 experiments' plumbing and metrics: tiny sizes; one short real-model run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.backends import FakeScoringBackend
from agents.errors import InvalidInputError
from evaluation.datasets import ENV_VAR, Example, data_root
from evaluation.experiments.demonstrations import condition_metrics, demo_splits, fixed_demonstrations, run_demos
from evaluation.experiments.stream import plot_stream, run_stream, stream_items, stream_windows

SMS = ["spam", "ham"]


def test_sms_auroc_ranks_p_spam_against_the_gold_label_not_correctness():
    # P(spam) ranks every spam above every ham, yet the argmax says "ham" for all: accuracy is the
    # ham share, the spam AUROC is perfect, and the confidence-for-correctness AUROC is separate.
    probs = np.array([[0.45, 0.55], [0.40, 0.60], [0.10, 0.90], [0.05, 0.95]])
    gold = np.array([0, 0, 1, 1])
    row = condition_metrics("none", probs, gold, SMS, ms=[1.0, 3.0, 2.0, 5.0])
    assert row["accuracy"] == 0.5 and row["auroc"] == row["auroc_spam"] == 1.0
    assert row["auroc_correct"] == 1.0 and row["ms_median"] == 2.5


def test_many_label_auroc_is_confidence_for_correctness_and_nan_when_undefined():
    labels = ["a", "b", "c"]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.4, 0.35, 0.25]])
    row = condition_metrics("fixed", probs, np.array([0, 1, 2]), labels, ms=[1.0])
    assert "auroc_spam" not in row and row["auroc"] == row["auroc_correct"] == 1.0
    assert math.isnan(condition_metrics("x", probs, np.array([0, 1, 0]), labels, ms=[1.0])["auroc"])


def test_fixed_demonstrations_take_one_label_at_a_time():
    fit = [Example(f"spam {i}", "spam") for i in range(3)] + [Example(f"ham {i}", "ham") for i in range(10)]
    demos = fixed_demonstrations(fit, SMS, k=4)
    assert sorted(label for _, label in demos) == ["ham", "ham", "spam", "spam"]
    assert len({t for t, _ in demos}) == 4 and demos == fixed_demonstrations(fit, SMS, k=4)
    labels = [f"l{i}" for i in range(10)]
    many = fixed_demonstrations([Example(f"t{i}", f"l{i}") for i in range(10)], labels, k=4)
    assert len({label for _, label in many}) == 4


SHARED = data_root()
needs_shared = pytest.mark.skipif(
    not (SHARED / "banking77").is_dir() or not (SHARED / "sms_spam_collection").is_dir(),
    reason=f"shared evaluation data not found at {SHARED}; set {ENV_VAR} to the directory holding it")


@needs_shared
@pytest.mark.parametrize("data", ["sms", "banking77"])
def test_fit_and_test_splits_are_disjoint(data):
    fit, test, labels = demo_splits(data, 200, 50)
    assert len(fit) == 200 and len(test) == 50
    assert not {e.text for e in fit} & {e.text for e in test}
    assert {e.label for e in fit + test} <= set(labels)


@needs_shared
def test_stream_seed_is_balanced_and_apart_from_the_stream():
    seeds, stream, labels, rest = stream_items(300, 20)
    assert labels == SMS and sorted(e.label for e in seeds).count("spam") == 10 and len(stream) == 300
    assert not {e.text for e in seeds} & {e.text for e in stream}
    # the rest (where tier 1 may be calibrated) is everything else, apart from both
    assert not {e.text for e in rest} & {e.text for e in seeds + stream} and len(rest) > 4000


def test_stream_windows_count_kept_escalated_and_partial():
    records = [
        {"gold": "ham", "tier1_answer": "ham", "escalated": False, "final": "ham", "ms": 10, "store_size": 20},
        {"gold": "spam", "tier1_answer": "ham", "escalated": True, "final": "spam", "ms": 30, "learned": True,
         "store_size": 21},
        {"gold": "ham", "tier1_answer": "spam", "escalated": False, "final": "spam", "ms": 20, "store_size": 21},
    ]
    first, second = stream_windows(records, window=2)
    assert first["escalation_rate"] == 0.5 and first["kept_accuracy"] == 1.0 and first["overall_accuracy"] == 1.0
    assert first["learned"] == 1 and first["store_size"] == 21 and not first["partial"]
    assert second["partial"] and second["kept_accuracy"] == 0.0 and second["escalated_accuracy"] is None


def _scores(p_spam: float) -> dict[str, float]:
    return {"spam": math.log(p_spam), "ham": math.log(1 - p_spam)}


@needs_shared
def test_stream_through_a_real_cascade_learns_from_tier_two(embedder):
    # Tier 1 (fake) is unsure on items 1 and 3; tier 2 (fake) answers 0.99 and 0.8: only the
    # confident answer is learned, and the next prompt carries the stored demonstrations.
    t0 = FakeScoringBackend([_scores(0.02), _scores(0.5), _scores(0.03), _scores(0.4)])
    t1 = FakeScoringBackend([_scores(0.01), _scores(0.2)])
    result = run_stream(n=4, window=2, resolver="tier", threshold=0.9, n_seed=4, embedder=embedder,
                        backends={"smollm2-135m": t0, "gemma3-270m": t1})
    escalated = [r["escalated"] for r in result["records"]]
    assert escalated == [False, True, False, True] and len(t1.calls) == 2
    assert [r["learned"] for r in result["records"]] == [False, True, False, False]
    assert [r["store_size"] for r in result["records"]] == [4, 5, 5, 5]
    assert "Labelled examples" in t0.calls[0]["item"] and result["windows"][0]["escalation_rate"] == 0.5
    assert not result["stopped_by_budget"] and result["n_done"] == 4


@needs_shared
def test_stream_with_the_oracle_reviewer_never_calls_tier_two(embedder):
    t0 = FakeScoringBackend([_scores(0.5), _scores(0.02), _scores(0.6)])
    t1 = FakeScoringBackend([])
    result = run_stream(n=3, window=3, resolver="reviewer", threshold=0.9, n_seed=2, embedder=embedder,
                        backends={"smollm2-135m": t0, "gemma3-270m": t1})
    records = result["records"]
    assert not t1.calls and [r["escalated"] for r in records] == [True, False, True]
    assert all(r["final"] == r["gold"] for r in records if r["escalated"])  # the oracle answers with gold
    assert records[-1]["store_size"] == 2 + sum(r["learned"] for r in records) and records[0]["learned"]


@needs_shared
def test_calibrated_stream_fits_tier1_outside_the_stream_and_runs_on_that_artifact(embedder):
    # Real SmolLM2: the artifact is fitted on 30 messages outside the seed and the stream (their
    # demonstrations from 30 others), checked on 10 more, and every stream item's tier-1 attempt
    # names it; the fixed threshold is not used.
    # With a vote weight, the artifact is fitted on the blended probabilities, and matched by the
    # prompt version that names the weight.
    result = run_stream(n=3, window=3, resolver="reviewer", n_seed=4, k=2, threads=1, embedder=embedder,
                        calibration=(30, 10, 30), target_accuracy=0.8, vote_weight=0.5)
    calibration = result["calibration"]
    assert result["threshold"] is None and calibration["fit_size"] == 30 and calibration["test_size"] == 10
    assert 0.0 <= calibration["test"]["ece"] <= 1.0 and calibration["target_accuracy"] == 0.8
    assert all(r["calibration"].startswith(calibration["artifact"] + " (") for r in result["records"])
    assert result["vote_weight"] == 0.5
    assert all(0 < r["tier1_model_confidence"] <= 1 for r in result["records"])


@needs_shared
def test_tier_resolver_stream_calibrates_tier_two_on_what_tier_one_escalates(embedder, models_dir):
    # Real SmolLM2 and Gemma: with tier 2 resolving escalations, Gemma gets its own artifact (its
    # own model file, same prompt and vote), fitted per label on the messages SmolLM2's artifact
    # escalates (`cascade calibrate --on-escalated` checks that filter); the stream then learns only
    # tier-2 answers that reach their label's threshold.
    result = run_stream(n=2, window=2, resolver="tier", n_seed=4, k=2, threads=1, embedder=embedder,
                        calibration=(30, 10, 30), target_accuracy=0.8, vote_weight=0.5, models_dir=models_dir,
                        teacher_calibration=(30, 10, 10))
    tier1, tier2 = result["calibration"], result["calibration"]["tier2"]
    assert tier1["artifact"] != tier2["artifact"] and tier2["on_escalated"]
    assert (tier2["fit_size"], tier2["pool_size"]) == (30, 10) and tier2["fitted_on"] <= 30
    assert set(tier2["threshold"]["per_label"]) <= set(SMS)  # a per-class artifact
    assert 0.0 <= tier2["test"]["ece"] <= 1.0 and result["learn_only_kept"] and result["n_done"] == 2


@needs_shared
def test_stream_calibration_needs_enough_messages_outside_the_stream():
    with pytest.raises(InvalidInputError, match="only .* are left"):
        run_stream(n=5000, resolver="reviewer", calibration=(300, 200, 1000))


def test_plot_stream_writes_a_png(tmp_path):
    windows = [{"items": "1-2", "escalation_rate": 0.5, "kept_accuracy": 1.0},
               {"items": "3-4", "escalation_rate": 0.25, "kept_accuracy": None}]
    path = plot_stream({"tier": windows, "reviewer": windows}, tmp_path / "s.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_shared
def test_demos_on_the_real_small_model(embedder):
    """8 real SmolLM2 scorings (4 test items, with and without retrieved demonstrations) and the encoder."""
    result = run_demos("sms", n_fit=40, n_test=4, k=2, embedder=embedder, conditions=("none", "retrieved", "encoder"))
    assert [r["condition"] for r in result["rows"]] == ["none", "retrieved", "encoder"]
    assert len(result["fixed_demonstrations"]) == 2 and result["n_test"] == 4
    for row in result["rows"]:
        assert 0 <= row["accuracy"] <= 1 and row["ms_median"] > 0 and row["n"] == 4
    assert result["rows"][1]["retrieval_ms_median"] > 0 and result["rows"][0]["retrieval_ms_median"] == 0
