"""Reader training rows, artifacts and the reader tier's loading checks (no model trained here)."""

from __future__ import annotations

import json

import pytest

from agents.errors import InvalidInputError, InvalidOutputError, ModelFileError
from orchestrator.core.config import ReaderTier
from orchestrator.training.artifacts import save_artifact
from orchestrator.training.reader import BUNDLED_BASE, ReaderExample, ReaderRecipe, base_folder, examples_hash, features
from orchestrator.training.reader_metrics import exact_match, f1, heldout_report
from orchestrator.training.reader_tier import load_reader, reader_manifest

TIER = ReaderTier(kind="reader", name="reader")


def test_an_answer_must_sit_at_its_offset_in_the_context():
    ReaderExample("Who?", "It was Ada.", "Ada", 7)
    ReaderExample("Who?", "Nothing here.")  # unanswerable
    with pytest.raises(InvalidInputError, match="not at offset"):
        ReaderExample("Who?", "It was Ada.", "Ada", 0)


def test_training_labels_point_at_the_answer_tokens_or_at_cls_for_no_answer():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder(BUNDLED_BASE)))
    context = "Employees must give four weeks' written notice before they leave."
    rows = features(tokenizer, [ReaderExample("How much notice?", context, "four weeks' written notice", 20),
                                ReaderExample("Who painted it?", context)], ReaderRecipe())
    answered, unanswered = rows
    ids = answered["input_ids"][answered["start_positions"]:answered["end_positions"] + 1]
    assert tokenizer.decode(ids).replace(" ", "") == "fourweeks'writtennotice"  # exactly the answer's wordpieces
    assert unanswered["start_positions"] == unanswered["end_positions"] == 0


def test_a_long_context_becomes_windows_and_only_the_one_holding_the_answer_points_at_it():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder(BUNDLED_BASE)))
    context = "Filler words go here. " * 60 + "The fee is ten dollars."
    at = context.index("ten dollars")
    rows = features(tokenizer, [ReaderExample("What is the fee?", context, "ten dollars", at)],
                    ReaderRecipe(max_length=64, stride=16))
    assert len(rows) > 3
    pointing = [r for r in rows if r["start_positions"] > 0]
    assert pointing and all(r["start_positions"] <= r["end_positions"] for r in pointing)
    assert sum(r["start_positions"] == 0 for r in rows) >= len(rows) - 2


def test_the_data_hash_changes_with_any_row():
    a = [ReaderExample("Q?", "ctx A", "A", 4)]
    assert examples_hash(a) == examples_hash(list(a))
    assert examples_hash(a) != examples_hash([ReaderExample("Q?", "ctx A")])


def test_squad_metrics_and_the_heldout_report_count_abstaining_right_on_unanswerable_rows():
    assert exact_match("The Eiffel Tower!", "eiffel tower") == 1.0 and f1("four weeks", "four weeks notice") == 0.8
    assert f1(None, None) == 1.0 and f1("x", None) == 0.0 and f1(None, "x") == 0.0

    class R:
        def __init__(self, text, confidence):
            self.span = None if text is None else type("S", (), {"text": text})()
            self.confidence = confidence

    rows = [ReaderExample("Q?", "ab cd", "cd", 3), ReaderExample("Q?", "ab cd", "ab", 0), ReaderExample("Q?", "zz")]
    report = heldout_report(rows, [R("cd", 0.9), R("cd", 0.2), R(None, 0.8)], full=True)
    assert report["f1"] == round(2 / 3, 4) and report["answerable"]["exact_match"] == 0.5
    assert report["unanswerable"]["abstained"] == 1.0 and report["confidence_auroc"] == 1.0


def _fake_artifact(data_dir, task="ask", kind="reader"):
    return save_artifact(data_dir, kind=kind, task=task, labels=None, base_model={"name": BUNDLED_BASE, "sha256": "0" * 64},
                         data_hash_hex="ab" * 32, write=lambda d: (d / "model.safetensors").write_bytes(b"not weights"),
                         recipe={"max_length": 128})


def test_no_trained_reader_for_the_task_is_an_invalid_output_saying_how_to_train_one(tmp_path):
    with pytest.raises(InvalidOutputError, match="train-reader --data cuad"):
        reader_manifest(tmp_path, TIER, "contract")


def test_an_artifact_of_another_task_or_kind_is_never_served(tmp_path):
    manifest = _fake_artifact(tmp_path, task="contract")
    tier = ReaderTier(kind="reader", name="reader", artifacts={"ask": str(manifest.path)})
    with pytest.raises(ModelFileError, match="not a reader for ask"):
        reader_manifest(tmp_path, tier, "ask")


def test_a_truncated_or_unloadable_artifact_is_a_model_file_error_naming_its_folder(tmp_path):
    manifest = _fake_artifact(tmp_path)
    with pytest.raises(ModelFileError, match=str(manifest.path)):
        load_reader(tmp_path, TIER, "ask")  # the bytes are there, but they are no model
    (manifest.path / "model.safetensors").write_bytes(b"cut")
    with pytest.raises(ModelFileError, match="truncated or replaced"):
        load_reader(tmp_path, TIER, "ask")
    (manifest.path / "manifest.json").write_text(json.dumps({"id": "half"}))
    with pytest.raises(ModelFileError, match="unreadable manifest.json"):
        load_reader(tmp_path, TIER, "ask")


def test_a_question_longer_than_the_window_allows_is_cut_and_the_stride_shrinks_to_fit():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder(BUNDLED_BASE)))
    question = "Which of the many long-winded words here " * 12 + "names the fee?"
    context = "Filler words go here. " * 40 + "The fee is ten dollars."
    rows = features(tokenizer, [ReaderExample(question, context, "ten dollars", context.index("ten dollars"))],
                    ReaderRecipe(max_length=96, stride=64))
    assert len(rows) > 1 and all(len(r["input_ids"]) <= 96 for r in rows)
    assert any(r["start_positions"] > 0 for r in rows)
