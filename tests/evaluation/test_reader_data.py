"""Reader rows from the shared data: fixed splits, answers at their offsets, test rows never in training."""

from __future__ import annotations

import pytest

from agents.errors import InvalidInputError
from evaluation.reader_data import answerable, halueval_split, unanswerable_pairs


def _split(**kwargs):
    try:
        return halueval_split(**kwargs)
    except InvalidInputError as exc:
        pytest.skip(f"no HaluEval in the shared data: {exc}")


def test_halueval_split_is_fixed_and_its_test_rows_never_reach_training():
    first, capped = _split(), _split(train_rows=500)
    assert first.test == capped.test  # the test split does not depend on how much training data is read
    train_pairs = {(e.question, e.context) for e in first.train}
    assert not train_pairs & {(e.question, e.context) for e in first.test}
    assert not {e.question for e in first.train} & {row["question"] for row in first.test_rows}
    for e in first.train[:200] + first.test[:200]:
        if e.answer is not None:
            assert e.context[e.answer_start:e.answer_start + len(e.answer)] == e.answer
    assert sum(e.answer is None for e in first.test) == 500


def test_rows_whose_answer_is_not_in_the_knowledge_are_left_out_and_pairs_never_hold_the_answer():
    row = {"knowledge": "Paris is in France.", "question": "Where?", "right_answer": "Lyon"}
    assert answerable(row) is None
    rows = [{"knowledge": "Ada wrote it.", "question": "Who wrote it?", "right_answer": "Ada"},
            {"knowledge": "Ada was born in London.", "question": "Where was she born?", "right_answer": "London"},
            {"knowledge": "It rains.", "question": "What falls?", "right_answer": "rain"}]
    pairs = unanswerable_pairs(rows, limit=10)
    assert [(p.question, p.context) for p in pairs] == [("Where was she born?", "It rains."),
                                                        ("What falls?", "Ada wrote it.")]  # "Ada" row skipped
