"""The encoder tier keeps learning: answers the next tier gives enter the example store and the
tier's head is refitted from it in the background; confidential items never reach it.

Real MiniLM and Qdrant; the next tier is a fake that replays confident answers."""

from __future__ import annotations

import math

import pytest

from agents.backends import FakeScoringBackend
from orchestrator import Cascade

pytestmark = pytest.mark.slow

LABELS = ["card arrival", "lost or stolen card", "exchange rate"]
FILE_ROWS = [("when will my new card arrive", "card arrival"), ("my card has not been delivered yet", "card arrival"),
             ("is my card on its way", "card arrival"), ("someone stole my card", "lost or stolen card"),
             ("I lost my debit card", "lost or stolen card"), ("a thief took my credit card", "lost or stolen card")]
TAUGHT = ["what is the euro to dollar exchange rate", "which exchange rate applies to pounds"]
SIMILAR = "what exchange rate do you give for euros to dollars"


def says(label: str) -> dict[str, float]:
    return {l: math.log(0.98 if l == label else 0.01) for l in LABELS}


def cascade_for(tmp_path, embedder, n_escalations: int) -> Cascade:
    import yaml

    examples = tmp_path / "labelled.jsonl"
    examples.write_text("".join(f'{{"text": "{t}", "label": "{l}"}}\n' for t, l in FILE_ROWS))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tiers": [
        {"name": "enc", "kind": "encoder", "examples_file": str(examples), "min_per_label": 1, "c": 16.0},
        {"name": "t1", "kind": "llama_cpp", "model_path": "unused.gguf"}],
        "tasks": {"classify": {"threshold": 0.5, "examples": {"k": 0, "learn_min_confidence": 0.9}}}}))
    cascade = Cascade.from_config(config, data_dir=str(tmp_path / "d"),
                                  backends={"t1": FakeScoringBackend([says("exchange rate")] * n_escalations)})
    cascade._embedder_model = embedder
    return cascade


def test_a_refit_after_escalations_changes_the_answer_for_a_similar_item(tmp_path, embedder):
    with cascade_for(tmp_path, embedder, len(TAUGHT) + 1) as cascade:
        before = cascade.classify(SIMILAR, LABELS)  # the head knows no "exchange rate": t1 answers, it is learned
        for text in TAUGHT:  # escalate too, unless the background refit after `before` is done already
            cascade.classify(text, LABELS)
        cascade.wait_for_refits(timeout=60)
        after = cascade.classify(SIMILAR, LABELS)
        learned = [e for e, _ in cascade.examples.all("classify")]
    assert before.tier_name == "t1" and before.attempts[0].answer is None  # the head could not answer it
    assert learned and {e.label for e in learned} == {"exchange rate"} and {e.tier for e in learned} == {"t1"}
    assert after.tier_name == "enc" and after.answer == "exchange rate"
    assert after.attempts[0].model_file_hash.startswith("frozen:")
    assert after.attempts[0].model_file_hash != before.attempts[0].model_file_hash


def test_confidential_items_never_reach_the_store_or_the_head(tmp_path, embedder):
    with cascade_for(tmp_path, embedder, len(TAUGHT) + 1) as cascade:
        for text in TAUGHT:
            assert cascade.classify(text, LABELS, confidential=True).tier_name == "t1"
        cascade.wait_for_refits(timeout=60)
        after = cascade.classify(SIMILAR, LABELS, confidential=True)
        stored = cascade.examples.count("classify")
        refits = cascade._encoders.runtimes["enc"].refits
    assert stored == 0 and refits == 0
    assert after.tier_name == "t1" and after.attempts[0].answer is None


def test_requests_are_answered_while_a_refit_runs(tmp_path, embedder):
    """A reviewer's label schedules a refit in a background thread: the old head answers meanwhile."""
    import threading

    two = LABELS[:2]
    with cascade_for(tmp_path, embedder, 0) as cascade:
        first = cascade.classify("is my card on its way", two)
        runtime = cascade._encoders.runtimes["enc"]
        gate = threading.Event()
        fit = runtime._fit
        runtime._fit = lambda *a: (gate.wait(30), fit(*a))[1]  # hold the refit until released
        cascade.add_reviewed_example("classify", "my replacement card came damaged", "card arrival", "alice")
        during = cascade.classify("someone stole my card", two)  # served by the old head, not blocked
        gate.set()
        cascade.wait_for_refits(timeout=60)
        after = cascade.classify("someone stole my card", two)
    assert first.tier_name == during.tier_name == after.tier_name == "enc" and during.answer == "lost or stolen card"
    assert during.attempts[0].model_file_hash == first.attempts[0].model_file_hash
    assert after.attempts[0].model_file_hash != first.attempts[0].model_file_hash and runtime.refits == 1
