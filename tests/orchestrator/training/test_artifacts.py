"""Trained-model artifacts on disk: versions, label sets, base models and damaged directories."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from agents.backends.encoder import LinearHead, fit_linear_head
from agents.errors import InvalidInputError, ModelFileError
from orchestrator.training.artifacts import data_hash, load_manifest, newest, save_artifact, versions

BASE = {"name": "all-MiniLM-L6-v2", "sha256": "ab" * 32}


def save(tmp_path, labels, rows=(("hello", "a"),), base=BASE, payload=b"weights"):
    return save_artifact(tmp_path, kind="classifier", task="classify", labels=labels, base_model=base,
                         data_hash_hex=data_hash(rows), write=lambda folder: (folder / "head.npz").write_bytes(payload),
                         recipe={"method": "frozen"}, heldout={"accuracy": 0.9})


def test_saved_artifact_has_the_shared_layout_and_counts_versions(tmp_path):
    first = save(tmp_path, ["a", "b"])
    second = save(tmp_path, ["a", "b"], rows=(("other", "b"),))
    manifest = json.loads((second.path / "manifest.json").read_text())
    assert first.id == f"classify-classifier-{first.data_hash[:8]}-v1" and second.version == 2
    assert second.path == tmp_path / "trained" / "classifier" / "classify" / second.id
    assert {"id", "kind", "task", "labels", "base_model", "data_hash", "created_at", "recipe", "train_seconds",
            "heldout", "version"} <= set(manifest)
    assert manifest["labels"] == ["a", "b"] and manifest["base_model"] == BASE
    assert [m.id for m in versions(tmp_path, "classifier", "classify")] == [first.id, second.id]
    assert newest(tmp_path, "classifier", "classify", ["a", "b"]).id == second.id


def test_a_changed_label_set_never_reuses_an_old_artifact(tmp_path):
    save(tmp_path, ["a", "b"])
    assert newest(tmp_path, "classifier", "classify", ["a", "b", "c"]) is None
    assert newest(tmp_path, "classifier", "classify", ["b", "a"]) is None  # the order is the head's columns
    assert newest(tmp_path, "classifier", "classify", ["a", "b"], base_sha256="cd" * 32) is None


def test_newer_artifact_of_another_label_set_leaves_the_older_match_served(tmp_path):
    old = save(tmp_path, ["a", "b"])
    save(tmp_path, ["a", "b", "c"])
    assert newest(tmp_path, "classifier", "classify", ["a", "b"]).id == old.id


@pytest.mark.parametrize("damage", ["truncated", "missing file", "bad manifest", "no manifest"])
def test_a_corrupt_artifact_is_a_clear_error(tmp_path, damage):
    saved = save(tmp_path, ["a", "b"])
    if damage == "truncated":
        (saved.path / "head.npz").write_bytes(b"w")
    elif damage == "missing file":
        (saved.path / "head.npz").unlink()
    elif damage == "bad manifest":
        (saved.path / "manifest.json").write_text("{not json")
    else:
        (saved.path / "manifest.json").unlink()
    with pytest.raises(ModelFileError) as info:
        newest(tmp_path, "classifier", "classify", ["a", "b"])
    assert str(saved.path) in str(info.value) and "cascade train" in str(info.value)
    assert isinstance(pickle.loads(pickle.dumps(info.value)), ModelFileError)  # crosses a Celery boundary


def test_a_failed_write_leaves_no_artifact(tmp_path):
    def crash(folder):
        (folder / "head.npz").write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        save_artifact(tmp_path, kind="classifier", task="classify", labels=["a", "b"], base_model=BASE,
                      data_hash_hex="0" * 64, write=crash)
    root = tmp_path / "trained" / "classifier" / "classify"
    assert list(root.iterdir()) == [] and newest(tmp_path, "classifier", "classify", ["a", "b"]) is None
    assert load_manifest  # the loader is public for the reader's artifacts too


def test_bad_task_names_are_refused(tmp_path):
    with pytest.raises(InvalidInputError):
        newest(tmp_path, "classifier", "../etc", ["a", "b"])


def test_linear_head_round_trips_and_matches_logistic_regression(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    for n_labels in (2, 3):
        y = [f"l{i}" for i in rng.integers(0, n_labels, size=60)]
        order = [f"l{i}" for i in reversed(range(n_labels))]  # not sorted: the head keeps the given order
        head = fit_linear_head(x, y, order, c=2.0)
        reference = LogisticRegression(C=2.0, max_iter=2000).fit(x, y).predict_proba(x)
        columns = [sorted(order).index(label) for label in order]
        np.testing.assert_allclose(head.predict_proba(x), reference[:, columns], atol=1e-4)
        head.save(tmp_path / f"head{n_labels}.npz")
        loaded = LinearHead.load(tmp_path / f"head{n_labels}.npz")
        assert loaded.labels == order
        np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x), atol=1e-6)


def test_an_unreadable_head_file_is_a_model_file_error(tmp_path):
    (tmp_path / "head.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="cascade train"):
        LinearHead.load(tmp_path / "head.npz")


def test_a_packaged_head_serves_its_own_label_list_only(tmp_path):
    from agents.errors import InvalidOutputError
    from orchestrator.training.serving import CachedEmbed, EncoderTierRuntime
    from tests.conftest import FakeEmbed

    embed = FakeEmbed()
    texts = ["win a prize now", "free cash call", "lunch at noon?", "see you at home"]
    head = fit_linear_head(embed(texts), ["fraud", "fraud", "legit", "legit"], ["fraud", "legit"])
    head.save(tmp_path / "fraud-head.npz")
    runtime = EncoderTierRuntime(data_dir=tmp_path, heads={"fraud": tmp_path / "fraud-head.npz"}, use_store=False)
    runtime._embed = CachedEmbed(embed)
    backend = runtime.backend_for("fraud", ["fraud", "legit"])
    assert backend.file_hash.startswith("packaged:") and set(backend.predict_proba("free cash", ["fraud", "legit"])) == {
        "fraud", "legit"}
    with pytest.raises(InvalidOutputError, match="too few examples"):  # another order: nothing else to fit
        runtime.backend_for("fraud", ["legit", "fraud"])
    runtime.close()


def test_the_encoder_embeds_on_its_configured_torch_threads(tmp_path):
    import torch

    from orchestrator.core.config import EncoderTier
    from orchestrator.training.serving import CachedEmbed, runtime_for
    from tests.conftest import FakeEmbed

    assert EncoderTier(kind="encoder", name="e").threads == 1  # the default: no stall beside a busy process
    runtime = runtime_for(EncoderTier(kind="encoder", name="e", threads=1), tmp_path, lambda: None,
                          default_embedder=lambda: None)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen = []
        embed = CachedEmbed(lambda texts: seen.append(torch.get_num_threads()) or FakeEmbed()(texts),
                            threads=runtime.embed.threads)
        embed(["hello"])
        assert seen == [1] and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        runtime.close()
