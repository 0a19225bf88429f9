"""The cascade uses the newest matching calibration artifact, and says which, or why none."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.backends import FakeScoringBackend
from agents.classify import PROMPT_VERSION, prompt_version
from agents.retrieval import Example
from orchestrator import Cascade
from orchestrator.calibration.store import ArtifactStore
from orchestrator.calibration.fitting import apply_artifact, fit_artifact
from tests.conftest import write_config

LABELS = ["spam", "ham"]
MODEL_HASH = "a" * 64


def synthetic_logprobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A model biased toward 'spam' whose margin still carries signal about the gold label."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    margin = rng.normal(loc=np.where(gold == 0, 1.0, -1.0), scale=1.0) + 1.5  # +1.5: the spam bias
    return np.column_stack([margin / 2, -margin / 2]), gold


@pytest.fixture
def store_with_artifact(tmp_path):
    logprobs, gold = synthetic_logprobs(400)
    artifact = fit_artifact("classify", logprobs, gold, LABELS, MODEL_HASH, PROMPT_VERSION, target_escalation_rate=0.3)
    return ArtifactStore(tmp_path / "data").save(artifact)


def cascade_with(tmp_path, outputs, model_hash=MODEL_HASH, t1_outputs=None):
    tiers = [{"name": "t0", "kind": "llama_cpp", "model_path": "x.gguf"},
             {"name": "t1", "kind": "llama_cpp", "model_path": "y.gguf"}]
    t0 = FakeScoringBackend(outputs)
    t0.file_hash = model_hash
    t1 = FakeScoringBackend(t1_outputs or [{"spam": math.log(0.9), "ham": math.log(0.1)}] * len(outputs))
    config = write_config(tmp_path / "c.yaml", tiers, threshold=0.99)
    return Cascade.from_config(config, data_dir=str(tmp_path / "data"), backends={"t0": t0, "t1": t1})


def test_matching_artifact_sets_confidence_and_threshold(tmp_path, store_with_artifact):
    artifact = store_with_artifact
    raw = {"spam": math.log(0.7), "ham": math.log(0.3)}
    with cascade_with(tmp_path, [raw]) as cascade:
        result = cascade.classify("hello", LABELS)
        stored = cascade.audit.get_run(result.run_id)["attempts"][0]
    first = result.attempts[0]
    expected_answer, expected_conf = apply_artifact(artifact, first.label_probs)
    assert first.raw_confidence == pytest.approx(0.7)
    assert first.answer == expected_answer and first.confidence == pytest.approx(expected_conf)
    assert first.threshold == pytest.approx(artifact.thresholds().value) and first.threshold != 0.99
    assert stored["calibration"].startswith(artifact.id) and artifact.id.endswith("/v1")
    assert stored["raw_confidence"] == pytest.approx(0.7)
    # the fitted threshold, not the configured 0.99, decided
    assert first.decision == ("accept" if first.confidence >= first.threshold else "escalate")


def test_no_artifact_for_this_model_falls_back_and_says_why(tmp_path, store_with_artifact):
    with cascade_with(tmp_path, [{"spam": math.log(0.7), "ham": math.log(0.3)}], model_hash="b" * 64) as cascade:
        result = cascade.classify("hello", LABELS)
    first = result.attempts[0]
    assert first.threshold == 0.99 and first.confidence == pytest.approx(0.7)
    assert "another model file or prompt version" in first.calibration and "configured threshold" in first.calibration


def test_no_artifact_for_this_label_set(tmp_path, store_with_artifact):
    labels = ["urgent", "not urgent"]
    scores = {"urgent": -0.1, "not urgent": -2.0}
    with cascade_with(tmp_path, [scores], t1_outputs=[scores]) as cascade:
        result = cascade.classify("hello", labels)
    assert "none for this label set" in result.attempts[0].calibration


def test_an_artifact_fitted_with_demonstrations_applies_once_the_store_holds_them(tmp_path):
    """`cascade calibrate --demos 2` saves a `+demos2` artifact: the cascade uses it only for
    prompts that carry two retrieved demonstrations, and the zero-shot prompt falls back."""
    logprobs, gold = synthetic_logprobs(400)
    artifact = ArtifactStore(tmp_path / "data").save(fit_artifact(
        "classify", logprobs, gold, LABELS, MODEL_HASH, prompt_version([("", "")] * 2), target_escalation_rate=0.3))
    raw = {"spam": math.log(0.7), "ham": math.log(0.3)}
    with cascade_with(tmp_path, [raw, raw]) as cascade:
        cascade.settings.tasks["classify"].examples.k = 2
        zero_shot = cascade.classify("win a prize now", LABELS).attempts[0]
        cascade.examples.add("classify", [Example(text="free entry, text WIN", label="spam", source="test"),
                                          Example(text="see you at lunch", label="ham", source="test")])
        with_demos = cascade.classify("win a prize now", LABELS).attempts[0]
    assert zero_shot.prompt_version == PROMPT_VERSION and "another model file or prompt version" in zero_shot.calibration
    assert with_demos.prompt_version == f"{PROMPT_VERSION}+demos2" and with_demos.calibration.startswith(artifact.id)
