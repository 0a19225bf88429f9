"""`cascade calibrate` on an encoder tier: its head's probabilities are calibrated like a model's
logits, and the cascade applies the artifact to that head only."""

from __future__ import annotations

import json

import pytest

from evaluation.datasets import ENV_VAR, data_root, load_named
from orchestrator import Cascade, load_settings
from orchestrator.calibration.run import run_calibration
from tests.conftest import write_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (data_root() / "sms_spam_collection").is_dir(),
    reason=f"shared evaluation data not found at {data_root()}; set {ENV_VAR}")]

EXAMPLES = [("WINNER!! You have won a free prize, call now to claim", "spam"),
            ("URGENT your account is locked, click this link", "spam"),
            ("Free entry to win cash, text WIN to 80086", "spam"),
            ("Are we still on for lunch tomorrow?", "ham"), ("I'll be home late, save me some dinner", "ham"),
            ("Thanks for the lift today, see you soon", "ham")]


def test_an_encoder_tier_is_calibrated_and_its_artifact_applied(tmp_path, monkeypatch):
    monkeypatch.delenv("CASCADE_CONFIG", raising=False)
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in EXAMPLES))
    config = write_config(tmp_path / "c.yaml", [{"name": "enc", "kind": "encoder", "examples_file": str(examples),
                                                 "use_store": False}])
    settings = load_settings(config, data_dir=str(tmp_path / "d"))
    result = run_calibration(settings, "classify", "sms", fit_size=80, test_size=40, target_accuracy=0.8,
                             progress=False, load=load_named)
    artifact = result["artifact"]
    assert artifact.model_file_hash.startswith("frozen:") and result["report"].n == 40
    with Cascade(settings) as cascade:
        answer = cascade.classify("Congratulations, you won a free holiday! Call now", ["spam", "ham"])
    attempt = answer.attempts[0]
    assert attempt.model_file_hash == artifact.model_file_hash and attempt.calibration.startswith(artifact.id)
