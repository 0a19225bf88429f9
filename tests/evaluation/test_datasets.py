"""Loaders of the shared evaluation data (real files, small checks) and the split helper."""

from __future__ import annotations

from collections import Counter

import pytest

from agents.errors import InvalidInputError
from evaluation.datasets import (
    ENV_VAR, Example, data_root, load_banking77, load_jsonl, load_named, load_smishing, load_sms_spam, split,
)

SHARED = data_root()
needs_shared = pytest.mark.skipif(
    not (SHARED / "banking77").is_dir(),
    reason=f"shared evaluation data not found at {SHARED}; set {ENV_VAR} to the directory holding banking77/")


@needs_shared
def test_banking77_labels_are_shown_with_spaces():
    test = load_banking77("test")
    assert len(test) == 3080 and len(test.labels) == 77
    assert "card arrival" in test.labels and not any("_" in label for label in test.labels)
    assert test.source_labels["card arrival"] == "card_arrival"
    assert {e.label for e in test.examples} <= set(test.labels)
    gold = test.gold_index(test.examples[:5])
    assert [test.labels[i] for i in gold] == [e.label for e in test.examples[:5]]


@needs_shared
def test_sms_sets_have_their_documented_label_counts():
    sms = load_sms_spam()
    assert sms.labels == ["spam", "ham"]
    assert Counter(e.label for e in sms.examples) == {"ham": 4827, "spam": 747}
    smishing = load_smishing()
    assert smishing.labels == ["spam", "ham"]
    # ham 4,844; smishing 638 + spam 489 (any case) all become "spam".
    assert Counter(e.label for e in smishing.examples) == {"ham": 4844, "spam": 638 + 489}
    assert any("\ufffd" in e.text for e in smishing.examples), "replacement characters are kept as text"


def test_missing_file_names_the_path_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(InvalidInputError) as info:
        load_sms_spam()
    assert str(tmp_path / "sms_spam_collection" / "SMSSpamCollection") in str(info.value)
    assert ENV_VAR in str(info.value)


def _write(root, *parts, data: bytes):
    path = root.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_malformed_sms_row_names_file_and_row(tmp_path):
    path = _write(tmp_path, "sms_spam_collection", "SMSSpamCollection", data=b"ham\thello\nspam no tab here\n")
    with pytest.raises(InvalidInputError, match=r"SMSSpamCollection, row 2: no TAB"):
        load_sms_spam(tmp_path)
    path.write_bytes(b"ham\thello\nphish\tclick here\n")
    with pytest.raises(InvalidInputError, match=r"row 2: label 'phish'"):
        load_sms_spam(tmp_path)


def test_undecodable_bytes_become_replacement_characters(tmp_path):
    _write(tmp_path, "sms_spam_collection", "SMSSpamCollection", data=b"spam\tWIN \xff\xfe cash\nham\tok\n")
    sms = load_sms_spam(tmp_path)
    assert sms.examples[0] == Example("WIN \ufffd\ufffd cash", "spam")


def test_smishing_normalises_label_case_and_rejects_unknown_labels(tmp_path):
    header = b"LABEL,TEXT,URL,EMAIL,PHONE\n"
    path = _write(tmp_path, "smishing_mendeley", "Mendeley_Dataset_5971.csv",
                  data=header + b"Smishing,click http://x,Yes,No,No\nSPAM,buy now,No,No,No\nham,\"hi, you\",No,No,No\n")
    assert [e.label for e in load_smishing(tmp_path).examples] == ["spam", "spam", "ham"]
    path.write_bytes(header + b"ham,hi,No,No,No\nfraud,x,No,No,No\n")
    with pytest.raises(InvalidInputError, match=r"Mendeley_Dataset_5971.csv, row 3: label 'fraud'"):
        load_smishing(tmp_path)


def test_banking77_unknown_category_is_an_error(tmp_path):
    _write(tmp_path, "banking77", "categories.json", data=b'["card_arrival", "exchange_rate"]')
    _write(tmp_path, "banking77", "train.csv", data=b"text,category\nwhere is my card,card_arrival\nhi,weather\n")
    with pytest.raises(InvalidInputError, match=r"train.csv, row 3: category 'weather'"):
        load_banking77("train", tmp_path)


def test_jsonl_rows_and_label_set(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": "y"}\n')
    data = load_named(str(path))
    assert data.labels == ["x", "y"] and len(data) == 2
    with pytest.raises(InvalidInputError, match=r"row 3: label 'y' is not in the task's labels"):
        load_jsonl(path, labels=["x", "z"])
    path.write_text('{"text": "a", "label": "x"}\nnot json\n')
    with pytest.raises(InvalidInputError, match=r"d.jsonl, row 2: not valid JSON"):
        load_jsonl(path)
    with pytest.raises(InvalidInputError, match="unknown data set"):
        load_named("nosuchset")


def _examples(n_spam: int, n_ham: int) -> list[Example]:
    return ([Example(f"spam {i}", "spam") for i in range(n_spam)]
            + [Example(f"ham {i}", "ham") for i in range(n_ham)])


def test_split_is_disjoint_deterministic_and_stratified():
    examples = _examples(100, 900)
    fit, test = split(examples, [300, 200], seed=7)
    assert len(fit) == 300 and len(test) == 200
    assert not {e.text for e in fit} & {e.text for e in test}
    assert (fit, test) == tuple(split(examples, [300, 200], seed=7))
    assert split(examples, [300], seed=8)[0] != fit
    assert abs(sum(e.label == "spam" for e in fit) - 30) <= 2
    assert abs(sum(e.label == "spam" for e in test) - 20) <= 2
    half, = split(examples, [0.5], seed=0)
    assert len(half) == 500


def test_split_drops_repeated_texts_and_refuses_too_much():
    examples = _examples(10, 10) + [Example("spam 0", "spam")] * 5
    a, b = split(examples, [10, 10], seed=0)
    assert len({e.text for e in a + b}) == 20
    with pytest.raises(InvalidInputError, match="only 20 exist"):
        split(examples, [15, 10])
