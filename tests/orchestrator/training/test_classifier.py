"""Training a classifier on tiny data, serving it from the encoder tier, and what it must refuse.

Real MiniLM, real training runs (a few seconds each on tiny data), real SQLite and Qdrant."""

from __future__ import annotations

import pytest

from agents.errors import ModelFileError
from orchestrator import Cascade
from orchestrator.core.labelled import Dataset, Example
from orchestrator.training.artifacts import newest
from orchestrator.training.classifier import train_classifier
from orchestrator.training.serving import load_trained
from tests.conftest import write_config

pytestmark = pytest.mark.slow

ROWS = {
    "card arrival": ["when will my new card arrive", "my card has not been delivered yet", "how long does card delivery take",
                     "still waiting for the card you posted", "the card has not come in the mail", "card delivery status please",
                     "is my card on its way", "my card never arrived"],
    "lost or stolen card": ["someone stole my card", "I lost my debit card", "my wallet with my card was stolen",
                            "I cannot find my bank card anywhere", "a thief took my credit card", "my card went missing",
                            "please block my stolen card", "I left my card somewhere and lost it"],
    "exchange rate": ["what is the euro to dollar rate", "which exchange rate do you use", "how much is a pound in euros",
                      "the conversion rate seems wrong", "what rate do I get for yen", "show me today's exchange rates",
                      "is the currency rate fixed", "why was my exchange rate so bad"],
}
LABELS = list(ROWS)


def tiny() -> Dataset:
    return Dataset("tiny", [Example(t, label) for label, texts in ROWS.items() for t in texts], LABELS,
                   {l: l for l in LABELS})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One frozen and one fine-tuned artifact in a shared data dir (trained once for the module)."""
    data_dir = tmp_path_factory.mktemp("trained")
    frozen = train_classifier(data_dir, "classify", tiny(), method="frozen", threads=1, heldout_share=0.25,
                              progress=False, log=lambda m: None)
    tuned = train_classifier(data_dir, "classify", tiny(), method="finetune", threads=1, heldout_share=0.25,
                             epochs=1, max_minutes=2, progress=False, log=lambda m: None)
    return data_dir, frozen, tuned


def test_a_small_training_run_yields_an_artifact_that_loads_and_classifies(trained):
    data_dir, frozen, tuned = trained
    assert frozen.manifest.recipe["method"] == "frozen" and tuned.manifest.recipe["method"] == "finetune"
    assert (tuned.manifest.path / "encoder" / "modules.json").is_file()
    for result in (frozen, tuned):
        assert set(result.heldout) >= {"n", "accuracy", "auroc", "ece"} and result.heldout["n"] == 6
        backend = load_trained(result.manifest, data_dir)
        probs = backend.predict_proba("a pickpocket took my card on the bus", LABELS)
        assert max(probs, key=probs.get) == "lost or stolen card" and sum(probs.values()) == pytest.approx(1)
    assert newest(data_dir, "classifier", "classify", LABELS).id == tuned.manifest.id


def test_the_encoder_tier_serves_the_newest_artifact_and_the_audit_names_it(trained, tmp_path):
    data_dir, _, tuned = trained
    config = write_config(tmp_path / "c.yaml", [{"name": "enc", "kind": "encoder"}], threshold=0.0)
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        result = cascade.classify("what rate will I get for dollars", LABELS)
        run = cascade.audit.get_run(result.run_id)
    assert result.answer == "exchange rate" and result.attempts[0].model_file_hash == tuned.manifest.id
    assert run["attempts"][0]["model_file_hash"] == tuned.manifest.id


def test_another_label_set_is_never_answered_by_the_artifact(trained, tmp_path):
    data_dir, _, tuned = trained
    config = write_config(tmp_path / "c.yaml", [{"name": "enc", "kind": "encoder"}], threshold=0.0)
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        result = cascade.classify("my card was stolen", ["lost or stolen card", "card arrival"])
    assert result.attempts[0].model_file_hash != tuned.manifest.id
    assert result.outcome == "needs_review" and "too few examples" in result.reason  # nothing else to fit on


def test_a_corrupt_artifact_fails_the_run_with_a_clear_error(trained, tmp_path):
    import shutil

    data_dir, _, tuned = trained
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    (copy / "trained" / "classifier" / "classify" / tuned.manifest.id / "head.npz").write_bytes(b"broken")
    config = write_config(tmp_path / "c.yaml", [{"name": "enc", "kind": "encoder"}], threshold=0.0)
    with Cascade.from_config(config, data_dir=str(copy)) as cascade:
        with pytest.raises(ModelFileError, match="cascade train") as info:
            cascade.classify("my card was stolen", LABELS)
        run = cascade.audit.get_run(info.value.run_id)
    assert tuned.manifest.id in str(info.value) and run["status"] == "failed"
