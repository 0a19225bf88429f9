"""The calibration pipeline: fit/apply on synthetic log-probs with known answers, the artifact
store, bad input, and one real `cascade calibrate` run with the bundled SmolLM2 on SMS data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import typer
from scipy.special import softmax
from typer.testing import CliRunner

from agents.classify import PROMPT_VERSION
from agents.errors import InvalidInputError
from cli.calibrate import calibrate
from orchestrator.calibration.store import ArtifactStore
from orchestrator.calibration.fitting import (
    CalibrationArtifact, apply_artifact, calibrated_predictions, evaluate_artifact, fit_artifact, threshold_for,
)
from evaluation.datasets import ENV_VAR, data_root
from routers import expected_calibration_error

HASH = "ab" * 32
LABELS = ["a", "b", "c"]


def synthetic(n: int, seed: int, scale: float = 1.0, bias: float = 0.0, k: int = 3):
    """Gold labels drawn from softmax(true logits); the 'model' reports scale * true logits, plus
    `bias` on label 0 (a label the model prefers whatever the input)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 2.0, size=(n, k))
    gold = np.array([rng.choice(k, p=p) for p in softmax(true, axis=1)])
    reported = scale * true
    reported[:, 0] += bias
    return np.log(softmax(reported, axis=1)), gold


def fit(z, gold, **kwargs) -> CalibrationArtifact:
    kwargs.setdefault("target_accuracy", 0.8)
    return fit_artifact("classify", z, gold, LABELS, HASH, PROMPT_VERSION, **kwargs)


def test_temperature_recovers_a_known_overconfidence():
    z, gold = synthetic(3000, seed=1, scale=2.5)
    artifact = fit(z[:2000], gold[:2000], debias=False)
    assert artifact.calibrator["temperature"] == pytest.approx(2.5, rel=0.15)
    report = evaluate_artifact(artifact, z[2000:], gold[2000:])
    assert report.ece_raw > 0.08 and report.ece < 0.05
    assert report.accuracy == report.accuracy_raw  # temperature never changes the answer


def test_a_calibrated_input_stays_put():
    z, gold = synthetic(3000, seed=2, scale=1.0)
    artifact = fit(z[:2000], gold[:2000], debias=False)
    assert artifact.calibrator["temperature"] == pytest.approx(1.0, rel=0.1)
    _, conf = calibrated_predictions(artifact, z[2000:])
    assert np.abs(conf - softmax(z[2000:], axis=1).max(axis=1)).max() < 0.05


def test_batch_debiasing_undoes_a_label_preference():
    z, gold = synthetic(2000, seed=3, bias=4.0)
    artifact = fit(z[:1000], gold[:1000])
    report = evaluate_artifact(artifact, z[1000:], gold[1000:])
    oracle = (synthetic(2000, seed=3)[0][1000:].argmax(axis=1) == gold[1000:]).mean()
    assert report.accuracy_raw < oracle - 0.15
    # Batch calibration divides by the mean distribution: it undoes most of the bias, not all.
    assert report.accuracy > report.accuracy_raw + 0.1 and report.ece < 0.07


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_apply_matches_batch_predictions_and_survives_json(tmp_path, method):
    z, gold = synthetic(800, seed=4, scale=2.0, bias=1.0)
    store = ArtifactStore(tmp_path)
    saved = store.save(fit(z[:400], gold[:400], method=method))
    loaded = store.latest("classify", HASH, PROMPT_VERSION, LABELS)
    assert loaded is not None and loaded.version == saved.version and loaded.method == method
    index, conf = calibrated_predictions(loaded, z[400:410])
    for row, i, c in zip(z[400:410], index, conf):
        label, confidence = apply_artifact(loaded, row)
        assert label == LABELS[i] and confidence == pytest.approx(c)
        # The tier's normalised label_probs (shifted log-probs) give the same answer.
        as_probs = dict(zip(LABELS, softmax(row)))
        assert apply_artifact(loaded, as_probs) == pytest.approx((label, confidence))


def test_guarantee_holds_on_fresh_data_from_the_same_distribution():
    z, gold = synthetic(6000, seed=5, scale=1.5)
    artifact = fit(z[:1500], gold[:1500], target_accuracy=0.85, delta=0.1)
    report = evaluate_artifact(artifact, z[1500:], gold[1500:])
    assert 0 < report.coverage < 1 and report.guarantee_held
    assert report.kept_accuracy >= 0.85


def test_per_class_thresholds_and_other_policies():
    z, gold = synthetic(2000, seed=6, scale=1.5)
    artifact = fit(z, gold, per_class=True, target_accuracy=0.8)
    t = {label: threshold_for(artifact, label) for label in LABELS}
    assert all(x.policy == "guaranteed_accuracy" for x in t.values())
    assert len({x.value for x in t.values()}) > 1, "each predicted label gets its own threshold"
    rate = fit(z, gold, target_accuracy=None, target_escalation_rate=0.3)
    assert threshold_for(rate, "a").escalation_rate == pytest.approx(0.3, abs=0.01)
    budget = fit(z, gold, target_accuracy=None, max_escalation_share=0.2)
    assert threshold_for(budget, "b").escalation_rate <= 0.2


def test_evaluation_writes_plots(tmp_path):
    z, gold = synthetic(600, seed=7, scale=2.0)
    artifact = fit(z[:300], gold[:300])
    report = evaluate_artifact(artifact, z[300:], gold[300:], report_dir=tmp_path / "r", title="synthetic")
    assert [p.rsplit("/", 1)[1] for p in report.plots] == [
        "reliability-raw.png", "reliability-calibrated.png", "risk-coverage.png"]
    assert all((tmp_path / "r" / name).read_bytes()[:4] == b"\x89PNG" for name in
               ("reliability-raw.png", "reliability-calibrated.png", "risk-coverage.png"))
    assert math.isclose(report.ece, expected_calibration_error(
        calibrated_predictions(artifact, z[300:])[1], calibrated_predictions(artifact, z[300:])[0] == gold[300:]))


def test_store_versions_and_matches_exactly(tmp_path):
    z, gold = synthetic(200, seed=8)
    store = ArtifactStore(tmp_path)
    first, second = store.save(fit(z, gold)), store.save(fit(z, gold))
    assert (first.version, second.version) == (1, 2)
    assert (tmp_path / "calibration" / "classify" / f"v0002-{second.labels_id}.json").is_file()
    assert store.latest("classify", HASH, PROMPT_VERSION, LABELS).version == 2
    # A different label set (or order), model file or prompt version must not use it.
    assert store.latest("classify", HASH, PROMPT_VERSION, ["a", "c", "b"]) is None
    assert store.latest("classify", HASH, PROMPT_VERSION, ["a", "b", "c", "d"]) is None
    assert store.latest("classify", "cd" * 32, PROMPT_VERSION, LABELS) is None
    assert store.latest("classify", HASH, "classify-v0", LABELS) is None
    assert "none for this label set" in store.why_none("classify", HASH, PROMPT_VERSION, ["x", "y"])
    assert "no calibration artifact" in store.why_none("other", HASH, PROMPT_VERSION, LABELS)
    other = fit_artifact("classify", np.log(softmax(z[:, :2], axis=1)), gold % 2, ["x", "y"], HASH, PROMPT_VERSION,
                         target_accuracy=0.8)
    assert store.save(other).version == 3
    assert store.latest("classify", HASH, PROMPT_VERSION, LABELS).version == 2


def test_bad_input_is_a_clear_error():
    z, gold = synthetic(200, seed=9)
    with pytest.raises(InvalidInputError, match="too few"):
        fit(z[:10], gold[:10])
    with pytest.raises(InvalidInputError, match="same label"):
        fit(z, np.zeros(200, dtype=int))
    with pytest.raises(InvalidInputError, match="outside the task's 3 labels"):
        fit(z, np.where(gold == 0, 5, gold))
    with pytest.raises(InvalidInputError, match="exactly one threshold policy"):
        fit(z, gold, target_accuracy=None)
    with pytest.raises(InvalidInputError, match="exactly one threshold policy"):
        fit(z, gold, target_escalation_rate=0.2)
    with pytest.raises(InvalidInputError, match="needs at least 200"):
        fit(z[:100], gold[:100], method="isotonic")
    with pytest.raises(InvalidInputError, match=r"shape \[n, 3\]"):
        fit(z[:, :2], gold)
    artifact = fit(z, gold)
    with pytest.raises(InvalidInputError, match="artifact classify/"):
        apply_artifact(artifact, {"a": 0.5, "b": 0.5})


needs_shared = pytest.mark.skipif(
    not (data_root() / "sms_spam_collection").is_dir(),
    reason=f"shared evaluation data not found at {data_root()}; set {ENV_VAR}")


@needs_shared
def test_calibrate_command_end_to_end_with_smollm2(tmp_path, monkeypatch):
    """Real SmolLM2 on 60 real SMS messages: the artifact is written, loadable and matched."""
    monkeypatch.delenv("CASCADE_CONFIG", raising=False)
    app = typer.Typer()
    app.command()(calibrate)
    # tier 2 of the default ladder is SmolLM2 (tier 1, the encoder, has no head for spam/ham here)
    args = ["--data", "sms", "--tier", "2", "--fit-size", "40", "--test-size", "20", "--target-accuracy", "0.8",
            "--data-dir", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["version"] == 1 and out["fit"]["n"] == 40 and out["test"]["n"] == 20
    assert all(key in out["test"] for key in ("auroc", "ece_raw", "ece", "coverage", "guarantee_held"))

    [model_hash] = json.loads((tmp_path / "file-hashes.json").read_text()).values()
    artifact = ArtifactStore(tmp_path).latest("classify", model_hash, PROMPT_VERSION, ["spam", "ham"])
    assert artifact is not None and artifact.source["data"] == "sms" and artifact.test_metrics["n"] == 20
    label, confidence = apply_artifact(artifact, [-2.0, -0.5])
    assert label in ("spam", "ham") and 0 <= confidence <= 1
    assert len(list((tmp_path / "calibration" / "cache").glob("sms-*.npz"))) == 1
    assert (tmp_path / "calibration" / "classify" / "v0001-report" / "risk-coverage.png").is_file()

    # A second run with another policy reads the cached log-probs and saves version 2.
    again = CliRunner().invoke(app, [*args[:8], "--target-escalation-rate", "0.3", *args[10:]])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["version"] == 2
    missing = CliRunner().invoke(app, ["--data", "sms", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "exactly one of --target-accuracy" in missing.output


@needs_shared
def test_calibrate_with_retrieved_demonstrations(tmp_path, monkeypatch):
    """--demos 2: every prompt carries the two nearest items of a disjoint pool; the artifact is
    for the `+demos2` prompt version and records the pool."""
    monkeypatch.delenv("CASCADE_CONFIG", raising=False)
    app = typer.Typer()
    app.command()(calibrate)
    result = CliRunner().invoke(app, ["--data", "sms", "--tier", "2", "--fit-size", "30", "--test-size", "10", "--demos", "2",
                                      "--demo-pool", "40", "--target-escalation-rate", "0.3",
                                      "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    [model_hash] = json.loads((tmp_path / "file-hashes.json").read_text()).values()
    store = ArtifactStore(tmp_path)
    assert store.latest("classify", model_hash, PROMPT_VERSION, ["spam", "ham"]) is None
    artifact = store.latest("classify", model_hash, f"{PROMPT_VERSION}+demos2", ["spam", "ham"])
    assert artifact is not None
    assert artifact.source["demonstrations"] == {"k": 2, "pool_size": 40, "order": "nearest_last", "vote_weight": 0.0}
    [cache] = (tmp_path / "calibration" / "cache").glob("sms-*.npz")
    assert "+demos2-pool" in cache.name
    # Another fit size draws another pool from the same set: its scores must not replay these.
    again = CliRunner().invoke(app, ["--data", "sms", "--tier", "2", "--fit-size", "31", "--test-size", "10", "--demos", "2",
                                     "--demo-pool", "40", "--target-escalation-rate", "0.3",
                                     "--data-dir", str(tmp_path), "--json"])
    assert again.exit_code == 0, again.output
    assert len(list((tmp_path / "calibration" / "cache").glob("sms-*.npz"))) == 2

    too_small = CliRunner().invoke(app, ["--data", "sms", "--tier", "2", "--demos", "4", "--demo-pool", "3",
                                         "--target-escalation-rate", "0.3", "--data-dir", str(tmp_path)])
    assert too_small.exit_code == 2 and "demonstration pool" in too_small.output


@needs_shared
def test_a_later_tier_is_calibrated_on_the_items_tier_1_escalates(data_dir, monkeypatch):
    """Real SmolLM2, then Gemma-3-270M on SMS: `--tier 2 --on-escalated` fits and tests Gemma only
    on the messages SmolLM2's artifact escalates; it needs that artifact first."""
    import yaml

    from tests.conftest import SMOL

    monkeypatch.delenv("CASCADE_CONFIG", raising=False)
    config = data_dir.parent / "cascade.yaml"
    config.write_text(yaml.safe_dump({"tiers": [SMOL, {"name": "gemma3-270m", "kind": "llama_cpp",
                                                       "model_path": "bundled:gemma3-270m"}]}))
    app = typer.Typer()
    app.command()(calibrate)
    base = ["--data", "sms", "--fit-size", "80", "--test-size", "20", "--target-escalation-rate", "0.5",
            "-c", str(config), "--data-dir", str(data_dir), "--json"]

    def run(*extra):
        return CliRunner().invoke(app, [*base, *extra])

    first_missing = run("--tier", "2", "--on-escalated")
    assert first_missing.exit_code == 2 and "needs tier 1 (smollm2-135m) calibrated first" in first_missing.output
    assert run("--on-escalated").exit_code == 2
    tier1 = run()
    assert tier1.exit_code == 0, tier1.output
    tier1_test = json.loads(tier1.stdout)["test"]

    tier2 = run("--tier", "2", "--on-escalated")
    assert tier2.exit_code == 0, tier2.output
    out = json.loads(tier2.stdout)
    # The test split is tier 1's test split less the answers tier 1 keeps there.
    assert out["test"]["n"] == round(20 * (1 - tier1_test["coverage"]))
    assert 30 <= out["fit"]["n"] < 80
    hashes = json.loads((data_dir / "file-hashes.json").read_text())
    gemma_hash = next(h for path, h in hashes.items() if "gemma" in path)
    artifact = ArtifactStore(data_dir).latest("classify", gemma_hash, PROMPT_VERSION, ["spam", "ham"])
    assert artifact.source["tier"] == "gemma3-270m"
    assert artifact.source["on_escalated"] == {"fit_sampled": 80, "test_sampled": 20}
