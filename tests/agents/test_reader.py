"""The reader's span decoding: the SQuAD-2 null-score decision and its confidence, on given logits."""

from __future__ import annotations

import numpy as np

from agents.reader import best_in_window


def _logits(n: int, start: dict[int, float], end: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    s, e = np.full(n, -5.0), np.full(n, -5.0)
    for i, v in start.items():
        s[i] = v
    for i, v in end.items():
        e[i] = v
    return s, e


def test_a_span_above_the_null_score_is_the_answer_and_holds_most_of_the_softmax():
    s, e = _logits(10, {0: 0.0, 4: 6.0}, {0: 0.0, 6: 6.0})
    mask = np.array([False, False, True, True, True, True, True, True, True, False])
    found, score, null, span_share, null_share = best_in_window(s, e, mask, max_answer_tokens=5)
    assert found == (4, 6) and score == 12.0 and null == 0.0
    assert span_share > 0.99 and null_share < 0.01 and abs(span_share + null_share - 1) < 0.01


def test_when_null_wins_the_best_span_is_still_reported_with_a_small_share():
    s, e = _logits(8, {0: 8.0, 3: 1.0}, {0: 8.0, 3: 1.0})
    mask = np.array([False, True, True, True, True, True, True, False])
    found, score, null, span_share, null_share = best_in_window(s, e, mask, max_answer_tokens=5)
    assert found == (3, 3) and score < null and null_share > 0.99 > span_share


def test_spans_longer_than_allowed_or_ending_before_they_start_are_never_chosen():
    s, e = _logits(12, {0: 0.0, 2: 9.0, 8: 1.0}, {0: 0.0, 1: 9.0, 10: 9.0})
    mask = np.array([False] + [True] * 10 + [False])
    found, *_ = best_in_window(s, e, mask, max_answer_tokens=4)
    assert found is not None and found[0] <= found[1] and found[1] - found[0] < 4  # not (2, 1), not (2, 10)
    assert found == (8, 10)


def test_a_window_without_context_tokens_can_only_abstain():
    s, e = _logits(4, {0: 1.0}, {0: 1.0})
    found, score, _, span_share, null_share = best_in_window(s, e, np.zeros(4, dtype=bool), max_answer_tokens=5)
    assert found is None and score == -np.inf and span_share == 0.0 and null_share == 1.0
