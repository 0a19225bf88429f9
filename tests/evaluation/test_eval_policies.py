"""Policy logic on synthetic cached outputs of four items (hand-computed figures in comments).

gold 0 everywhere; small answers [0, 1, 1, 0] (right on items 0, 3), large answers [0, 0, 1, 0]
(right on 0, 1, 3): only item 1 is fixed by escalating; item 2 both get wrong. Small costs 1 and
takes 10 ms per item, large costs 10 and takes 100 ms.
"""

import numpy as np
import pytest

from evaluation.policies import (
    TierOutcomes,
    accuracy,
    always_large,
    always_small,
    escalate_lowest,
    knn_win_rate,
    oracle,
    positive_f1,
    random_at_rate,
    scored_policy,
    summarize,
    sweep,
)

T = TierOutcomes(gold=np.zeros(4, dtype=int), small_pred=np.array([0, 1, 1, 0]), large_pred=np.array([0, 0, 1, 0]),
                 small_cost=np.ones(4), large_cost=np.full(4, 10.0), small_ms=np.full(4, 10.0),
                 large_ms=np.full(4, 100.0), shared_ms=np.zeros(4))
SCORE = np.array([0.9, 0.1, 0.5, 0.8])  # escalation order: items 1, 2, 3, 0


def test_outcomes_check_shapes():
    with pytest.raises(ValueError, match="small_pred"):
        TierOutcomes(gold=np.zeros(4), small_pred=np.zeros(3), large_pred=np.zeros(4), small_cost=np.zeros(4),
                     large_cost=np.zeros(4), small_ms=np.zeros(4), large_ms=np.zeros(4), shared_ms=np.zeros(4))


def test_always_small_and_always_large():
    small, large = always_small(T), always_large(T)
    assert accuracy(small.final, T.gold) == 0.5 and not small.escalated.any()
    assert small.cost.tolist() == [1, 1, 1, 1] and small.latency_ms.tolist() == [10] * 4
    assert accuracy(large.final, T.gold) == 0.75 and large.escalated.all()
    assert large.cost.tolist() == [10] * 4  # a router pays only the tier it picks


def test_oracle_escalates_exactly_the_fixable_items():
    r = oracle(T, accuracy)
    assert r.escalated.tolist() == [False, True, False, False]
    assert accuracy(r.final, T.gold) == 0.75
    assert r.cost.sum() == 3 * 1 + 10  # router: three small answers, one large


def test_cascade_pays_the_small_tier_on_escalated_items_too():
    r = scored_policy("cascade", T, SCORE, accuracy, cascade=True, escalate=escalate_lowest(SCORE, 1))
    assert r.escalated.tolist() == [False, True, False, False]
    assert r.cost.sum() == 4 * 1 + 10
    assert r.latency_ms.tolist() == [10, 110, 10, 10]


def test_sweep_hand_case():
    calls, quality, cost = sweep(T, SCORE, accuracy, cascade=True)
    np.testing.assert_allclose(calls, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(quality, [0.5, 0.75, 0.75, 0.75, 0.75])
    np.testing.assert_allclose(cost, [1, 3.5, 6, 8.5, 11])  # (4 + 10 m) / 4
    _, _, router_cost = sweep(T, SCORE, accuracy, cascade=False)
    np.testing.assert_allclose(router_cost, [1, 3.25, 5.5, 7.75, 10])  # (4 - m + 10 m) / 4


def test_summarize_hand_case():
    r = scored_policy("cascade", T, SCORE, accuracy, cascade=True, escalate=escalate_lowest(SCORE, 1))
    row = summarize([r], T, accuracy, cost_max=11.0)
    assert row["quality"] == 0.75 and row["escalation_rate"] == 0.25
    assert row["cost_total"] == 14 and row["cost_per_item"] == 3.5
    assert row["latency_p50_ms"] == 10 and row["latency_p95_ms"] == pytest.approx(10 + 0.85 * 100)
    assert row["silent_failure_rate"] == 0.25  # item 2 kept and wrong
    # area 0.25 * (0.5 + 0.75) / 2 + 0.75 * 0.75 = 0.71875; (0.71875 - 0.5) / 0.25
    assert row["apgr"] == pytest.approx(0.875)
    assert row["calls_50"] == pytest.approx(0.125) and row["calls_80"] == pytest.approx(0.2)
    assert row["auroc"] == 1.0  # the two right answers (0.9, 0.8) outrank the two wrong ones (0.1, 0.5)
    assert 0 < row["aiq"] < 0.75


def test_summarize_without_a_gap_gives_none():
    same = TierOutcomes(**{**vars(T), "large_pred": T.small_pred})
    row = summarize([oracle(same, accuracy)], same, accuracy, cost_max=10.0)
    assert row["apgr"] is None and row["calls_50"] is None


def test_random_at_rate_averages_to_the_straight_line():
    runs = random_at_rate(T, 1, accuracy, seeds=range(400))
    assert all(r.escalated.sum() == 1 for r in runs)
    # each item goes up with probability 1/4 and only item 1 gains: 0.5 + 0.25 * 0.25
    assert summarize(runs, T, accuracy, cost_max=10.0)["quality"] == pytest.approx(0.5625, abs=0.02)


def test_knn_win_rate():
    fit = np.eye(2)
    wins = np.array([1, 0])
    assert knn_win_rate(fit, wins, np.array([[1.0, 0.0]]), k=1).tolist() == [1.0]
    both = np.array([[1.0, 1.0]]) / np.sqrt(2)
    assert knn_win_rate(fit, wins, both, k=2) == pytest.approx([0.5])


def test_positive_f1():
    # one true positive, two predicted and two actual positives: 2 * 1 / (2 + 2)
    assert positive_f1(1)(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == 0.5
    assert positive_f1(1)(np.zeros(3), np.zeros(3)) == 0.0
