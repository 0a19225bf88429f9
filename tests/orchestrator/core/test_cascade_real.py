"""The cascade end to end with the real bundled models, the real local server and real databases."""

from __future__ import annotations

import pytest

from agents.classify import PROMPT_VERSION
from orchestrator import Cascade
from tests.conftest import SMOL, write_config

pytestmark = pytest.mark.slow  # real models

SPAM = "WINNER!! You have won a free prize worth $1000, call 09061701461 now to claim"
LABELS = ["spam", "ham"]


def chat_requests(log) -> int:
    return log.read_text().count("POST /v1/chat/completions") if log.exists() else 0


def tier1_confidence(tmp_path, data_dir) -> float:
    """The small model's own confidence on SPAM, read through a one-tier cascade."""
    config = write_config(tmp_path / "probe.yaml", [SMOL])
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        return cascade.classify(SPAM, LABELS).confidence


def test_confident_item_stays_on_tier1(tmp_path, data_dir, database_url, gemma_server):
    confidence = tier1_confidence(tmp_path, data_dir)
    config = write_config(tmp_path / "c.yaml", [SMOL, gemma_server["tier"]], threshold=confidence - 0.05)
    before = chat_requests(gemma_server["log"])
    with Cascade.from_config(config, data_dir=str(data_dir), database_url=database_url) as cascade:
        result = cascade.classify(SPAM, LABELS)
        run = cascade.audit.get_run(result.run_id)

    assert result.outcome == "accepted" and result.tier_name == "smollm2-135m"
    assert result.answer in LABELS and result.confidence == pytest.approx(confidence)
    assert len(result.attempts) == 1 and not result.escalated
    assert chat_requests(gemma_server["log"]) == before, "tier 2 must not be called"

    assert run["status"] == "accepted" and run["final_tier"] == "smollm2-135m"
    [attempt] = run["attempts"]
    assert attempt["decision"] == "accept" and "threshold" in attempt["reason"]
    assert len(attempt["model_file_hash"]) == 64 and attempt["prompt_version"] == PROMPT_VERSION
    assert attempt["tokens_in"] > 20 and attempt["tokens_out"] > 0 and attempt["latency_ms"] > 0
    assert set(attempt["label_probs"]) == set(LABELS) and sum(attempt["label_probs"].values()) == pytest.approx(1)
    assert len(run["input_hash"]) == 64 and run["params"] == {
        "labels": LABELS,
        "demonstrations": [],
        "data_policy": {"source": "task", "external": "redact", "keep_examples": True},
    }


def test_unconfident_item_escalates_to_tier2(tmp_path, data_dir, database_url, gemma_server):
    confidence = tier1_confidence(tmp_path, data_dir)
    threshold = min(1.0, confidence + 0.02)
    config = write_config(tmp_path / "c.yaml", [SMOL, gemma_server["tier"]], threshold=threshold)
    before = chat_requests(gemma_server["log"])
    with Cascade.from_config(config, data_dir=str(data_dir), database_url=database_url) as cascade:
        result = cascade.classify(SPAM, LABELS)
        run = cascade.audit.get_run(result.run_id)

    assert chat_requests(gemma_server["log"]) == before + 1
    assert result.outcome == "accepted" and result.tier_name == "gemma3-270m" and result.answer in LABELS
    first, second = result.attempts
    assert first.decision == "escalate" and f"< threshold {threshold:.3f}" in first.reason
    assert second.decision == "accept" and second.tier_name == "gemma3-270m"

    assert run["status"] == "accepted" and run["final_tier"] == "gemma3-270m"
    stored = run["attempts"]
    assert [a["tier_name"] for a in stored] == ["smollm2-135m", "gemma3-270m"]
    assert [a["decision"] for a in stored] == ["escalate", "accept"]
    assert stored[1]["model_id"] == "openai/gemma-3-270m" and len(stored[1]["model_file_hash"]) == 64
    assert stored[1]["tokens_in"] > 0 and stored[1]["tokens_out"] > 0


def test_multi_token_labels_are_scored_whole(tmp_path, data_dir):
    """Labels sharing their first token must still get distinct, normalised probabilities."""
    labels = ["card arrival", "card payment fee charged", "card linking", "exchange rate"]
    config = write_config(tmp_path / "c.yaml", [SMOL])
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        result = cascade.classify("When will my new card be delivered to my home?", labels)
    probs = result.attempts[0].label_probs
    assert sum(probs.values()) == pytest.approx(1)
    card_labels = [probs[l] for l in labels[:3]]
    assert len({round(p, 6) for p in card_labels}) == 3, "labels sharing a first token got the same score"
