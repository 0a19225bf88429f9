"""Routing logic in isolation: recording fakes stand in for the tiers (real models are tested elsewhere)."""

from __future__ import annotations

import math
import pickle

import pytest

from agents.backends import FakeCompletionBackend, FakeScoringBackend
from agents.errors import ModelTimeoutError, TierUnreachableError
from orchestrator import Cascade
from tests.conftest import fake_tiers, write_config

LABELS = ["spam", "ham"]


def scores(p_spam: float) -> dict[str, float]:
    return {"spam": math.log(p_spam), "ham": math.log(1 - p_spam)}


@pytest.fixture
def make(tmp_path):
    def build(backends: dict, threshold: float = 0.8):
        config = write_config(tmp_path / "c.yaml", fake_tiers(len(backends)), threshold=threshold)
        return Cascade.from_config(config, data_dir=str(tmp_path / "data"), backends=backends)
    return build


def test_escalates_through_three_tiers_until_confident(make):
    t0, t1, t2 = FakeScoringBackend([scores(0.6)]), FakeScoringBackend([scores(0.7)]), FakeScoringBackend([scores(0.1)])
    with make({"t0": t0, "t1": t1, "t2": t2}) as cascade:
        result = cascade.classify("hello", LABELS)
    assert [a.decision for a in result.attempts] == ["escalate", "escalate", "accept"]
    assert result.tier_name == "t2" and result.answer == "ham" and result.confidence == pytest.approx(0.9)
    assert len(t0.calls) == len(t1.calls) == len(t2.calls) == 1


def test_confident_first_tier_never_calls_the_next(make):
    t0, t1 = FakeScoringBackend([scores(0.95)]), FakeScoringBackend([])
    with make({"t0": t0, "t1": t1}) as cascade:
        result = cascade.classify("hello", LABELS)
    assert result.tier_name == "t0" and t1.calls == []


def test_last_tier_below_threshold_is_kept_and_says_so(make):
    with make({"t0": FakeScoringBackend([scores(0.6)]), "t1": FakeScoringBackend([scores(0.55)])}) as cascade:
        result = cascade.classify("hello", LABELS)
    assert result.outcome == "accepted" and result.tier_name == "t1"
    assert "no tier left to escalate to" in result.reason


def test_invalid_output_escalates_then_needs_review_on_last_tier(make):
    chat = FakeCompletionBackend(["I think it is probably a banana"])
    with make({"t0": FakeScoringBackend([scores(0.5)]), "t1": chat}) as cascade:
        result = cascade.classify("hello", LABELS)
        run = cascade.audit.get_run(result.run_id)
    assert result.outcome == "needs_review" and result.answer is None
    assert "none of the allowed labels" in result.reason
    assert run["status"] == "needs_review" and run["attempts"][1]["decision"] == "error"


def test_invalid_first_tier_output_escalates(make):
    chat = FakeCompletionBackend(["nonsense"])
    with make({"t0": chat, "t1": FakeScoringBackend([scores(0.9)])}) as cascade:
        result = cascade.classify("hello", LABELS)
    assert result.attempts[0].decision == "escalate" and "invalid output" in result.attempts[0].reason
    assert result.tier_name == "t1"


def test_free_text_answers_are_matched_to_labels(make):
    chat = FakeCompletionBackend(['Label: "Ham".'])
    with make({"t0": chat}) as cascade:
        result = cascade.classify("hello", LABELS)
    assert result.answer == "ham" and "no confidence signal" in result.reason


@pytest.mark.parametrize("error", [TierUnreachableError("down; run x"), ModelTimeoutError("slow")])
def test_provider_failure_fails_the_run_but_records_every_attempt(make, error):
    with make({"t0": FakeScoringBackend([scores(0.5)]), "t1": FakeScoringBackend([error])}) as cascade:
        with pytest.raises(type(error)) as info:
            cascade.classify("hello", LABELS)
        run = cascade.audit.get_run(info.value.run_id)
    assert run["status"] == "failed" and run["error_type"] == type(error).__name__
    assert [a["decision"] for a in run["attempts"]] == ["escalate", "error"]
    assert info.value.run_id in str(info.value)


def test_errors_pickle_across_process_boundaries():
    error = TierUnreachableError("down", run_id="r1")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is TierUnreachableError and clone.message == "down" and clone.run_id == "r1"


def test_injected_backend_for_unknown_tier_is_rejected(tmp_path):
    from agents.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown tier"):
        Cascade.from_config(write_config(tmp_path / "c.yaml", fake_tiers(1)), data_dir=str(tmp_path / "d"),
                            backends={"nope": FakeScoringBackend([])})


def test_local_tier_cost_comes_from_its_configured_prices(tmp_path):
    tier = {"name": "t0", "kind": "llama_cpp", "model_path": "unused.gguf",
            "prices": {"input_per_1k": 0.5, "output_per_1k": 2.0}}
    with Cascade.from_config(write_config(tmp_path / "c.yaml", [tier]), data_dir=str(tmp_path / "d"),
                             backends={"t0": FakeScoringBackend([scores(0.9)])}) as cascade:
        result = cascade.classify("three word text", LABELS)
    attempt = result.attempts[0]
    assert attempt.tokens_in > 0 and attempt.tokens_out == 2  # the fake: words in the item, number of labels
    assert result.cost == pytest.approx((attempt.tokens_in * 0.5 + attempt.tokens_out * 2.0) / 1000)
    assert cascade.audit.get_run(result.run_id)["cost"] == pytest.approx(result.cost)


def test_two_phase_run_pauses_before_escalating_then_resumes_the_same_run(make):
    t0, t1 = FakeScoringBackend([scores(0.95), scores(0.6)]), FakeScoringBackend([scores(0.1)])
    with make({"t0": t0, "t1": t1}) as cascade:
        confident = cascade.run("classify", text="sure", labels=LABELS, stop_after_tier=0)
        paused = cascade.run("classify", text="unsure", labels=LABELS, stop_after_tier=0)
        assert confident.outcome == "accepted" and t1.calls == []
        assert paused.outcome == "pending" and "escalation pending" in paused.reason and t1.calls == []
        assert cascade.audit.get_run(paused.run_id)["status"] == "pending"

        resumed = cascade.run("classify", text="unsure", labels=LABELS, resume_run_id=paused.run_id)
        run = cascade.audit.get_run(paused.run_id)
    assert resumed.run_id == paused.run_id and resumed.tier_name == "t1" and len(t1.calls) == 1
    assert [a["decision"] for a in run["attempts"]] == ["escalate", "accept"] and run["status"] == "accepted"


def test_resume_refuses_a_mismatched_text(make):
    from agents.errors import InvalidInputError

    with make({"t0": FakeScoringBackend([scores(0.6)]), "t1": FakeScoringBackend([])}) as cascade:
        paused = cascade.run("classify", text="unsure", labels=LABELS, stop_after_tier=0)
        with pytest.raises(InvalidInputError, match="does not match the input"):
            cascade.run("classify", text="other text", labels=LABELS, resume_run_id=paused.run_id)
