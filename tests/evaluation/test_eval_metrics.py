"""Every policy metric on small cases computed by hand (the arithmetic is in the comments)."""

import math

import numpy as np
import pytest

from evaluation.metrics import (
    MIN_GAP,
    aiq,
    apgr,
    calls_to_recover,
    escalation_rate,
    latency_percentiles,
    nondecreasing_hull,
    silent_failure_rate,
)

# Small tier 0.5, large tier 0.9: the gap is 0.4.
LINE = ([0.0, 0.5, 1.0], [0.5, 0.7, 0.9])  # random routing: the straight line
ORACLE_LIKE = ([0.0, 0.2, 1.0], [0.5, 0.9, 0.9])  # recovers the whole gap with 20% of calls
LATE = ([0.0, 0.8, 1.0], [0.5, 0.5, 0.9])  # only the last 20% of calls help


def test_escalation_rate():
    assert escalation_rate([True, False, False, True]) == 0.5
    assert escalation_rate([0, 0, 0]) == 0.0


def test_silent_failure_rate_counts_kept_wrong_answers_only():
    # item 0 kept and wrong (silent), item 1 kept and right, item 2 escalated and wrong, item 3 escalated and right
    assert silent_failure_rate([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(1 / 4)
    assert silent_failure_rate([1, 1], [0, 0]) == 0.0  # everything escalated: nothing kept silently


def test_silent_failure_rate_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        silent_failure_rate([0, 1], [1])


def test_latency_percentiles_interpolate():
    # sorted 10, 20, 30, 40: p50 halfway between 20 and 30; p95 at rank 0.95 * 3 = 2.85 -> 30 + 0.85 * 10
    assert latency_percentiles([40, 10, 30, 20]) == pytest.approx({"p50": 25.0, "p95": 38.5})


def test_latency_percentiles_reject_negative():
    with pytest.raises(ValueError):
        latency_percentiles([1.0, -2.0])


def test_apgr_of_random_routing_is_half():
    assert apgr(*LINE, 0.5, 0.9) == pytest.approx(0.5)


def test_apgr_hand_cases():
    # area = 0.2 * (0.5 + 0.9) / 2 + 0.8 * 0.9 = 0.86; (0.86 - 0.5) / 0.4 = 0.9
    assert apgr(*ORACLE_LIKE, 0.5, 0.9) == pytest.approx(0.9)
    # area = 0.8 * 0.5 + 0.2 * (0.5 + 0.9) / 2 = 0.54; (0.54 - 0.5) / 0.4 = 0.1
    assert apgr(*LATE, 0.5, 0.9) == pytest.approx(0.1)


def test_apgr_sorts_points_by_calls():
    x, y = ORACLE_LIKE
    assert apgr(x[::-1], y[::-1], 0.5, 0.9) == pytest.approx(0.9)


def test_apgr_undefined_without_gap():
    with pytest.warns(RuntimeWarning, match="no gap"):
        assert math.isnan(apgr(*LINE, 0.9, 0.9))


def test_gap_metrics_undefined_for_a_gap_too_small_to_normalise_by():
    # quality 0.845 vs 0.846 (two near-equal tiers): dividing by 0.001 would give nonsense figures
    x, y = np.array([0.0, 0.02, 1.0]), np.array([0.845, 0.935, 0.846])
    with pytest.warns(RuntimeWarning, match="too small to normalise"):
        assert math.isnan(apgr(x, y, 0.845, 0.846))
    with pytest.warns(RuntimeWarning, match="too small to normalise"):
        assert math.isnan(calls_to_recover(x, y, 0.845, 0.846, 0.5))
    assert apgr(x, y, 0.845, 0.845 + 2 * MIN_GAP) > 0  # a gap above the limit is normalised by


def test_calls_to_recover_hand_cases():
    # 50%: target 0.7 on the segment (0, 0.5)-(0.2, 0.9): x = 0.2 * 0.2 / 0.4 = 0.1; 80%: 0.82 -> 0.16
    assert calls_to_recover(*ORACLE_LIKE, 0.5, 0.9, 0.5) == pytest.approx(0.1)
    assert calls_to_recover(*ORACLE_LIKE, 0.5, 0.9, 0.8) == pytest.approx(0.16)
    assert calls_to_recover(*LINE, 0.5, 0.9, 0.5) == pytest.approx(0.5)
    assert calls_to_recover(*LINE, 0.5, 0.9, 0.8) == pytest.approx(0.8)
    assert calls_to_recover(*LINE, 0.5, 0.9, 1.0) == pytest.approx(1.0)


def test_calls_to_recover_takes_the_first_crossing():
    # target 0.7 first reached on (0, 0.5)-(0.5, 0.8): x = 0.5 * 0.2 / 0.3
    bumpy = ([0.0, 0.5, 0.6, 1.0], [0.5, 0.8, 0.6, 0.9])
    assert calls_to_recover(*bumpy, 0.5, 0.9, 0.5) == pytest.approx(1 / 3)


def test_calls_to_recover_never_reached_is_nan():
    assert math.isnan(calls_to_recover([0.0, 1.0], [0.5, 0.6], 0.5, 0.9, 0.5))


def test_nondecreasing_hull_drops_points_under_the_chord_and_past_the_best():
    hx, hy = nondecreasing_hull([0, 0.5, 1.0, 1.5, 0], [0.5, 0.6, 1.0, 0.9, 0.4])
    np.testing.assert_allclose(hx, [0.0, 1.0])
    np.testing.assert_allclose(hy, [0.5, 1.0])


def test_aiq_hand_cases():
    # the chord (0, 0.5)-(1, 1): area 0.75 over a range of 1
    assert aiq([0, 1], [0.5, 1.0]) == pytest.approx(0.75)
    # (0.5, 0.6) lies under that chord: same hull, same AIQ
    assert aiq([0, 0.5, 1], [0.5, 0.6, 1.0]) == pytest.approx(0.75)
    # the hull climbs to (0.5, 0.9) then stays flat: 0.5 * 0.7 + 0.5 * 0.9 = 0.8
    assert aiq([0, 0.5, 1], [0.5, 0.9, 0.8]) == pytest.approx(0.8)


def test_aiq_over_a_wider_range_extends_flat():
    # 0.75 on [0, 1], then quality 1 on [1, 2]: 1.75 / 2
    assert aiq([0, 1], [0.5, 1.0], cost_max=2.0) == pytest.approx(0.875)


def test_aiq_counts_zero_below_the_cheapest_point():
    # nothing on [0, 0.5], the chord (0.5, 0.6)-(1, 1) on [0.5, 1]: 0.5 * 0.8 = 0.4
    assert aiq([0.5, 1.0], [0.6, 1.0], cost_max=1.0) == pytest.approx(0.4)


def test_aiq_needs_a_cost_range():
    with pytest.raises(ValueError, match="empty"):
        aiq([0, 0], [0.5, 0.6])


def test_aiq_matches_the_best_mixture_within_budget():
    # At budget c the hull is the best quality of a point costing <= c or of a mix of two points
    # whose expected cost is c; integrated on a fine grid it must give the same AIQ.
    rng = np.random.default_rng(0)
    cost, quality = rng.random(8), rng.random(8)
    grid = np.linspace(0, 1, 20001)
    best = np.zeros_like(grid)
    for i in range(8):
        best = np.where(grid >= cost[i], np.maximum(best, quality[i]), best)
        for j in range(8):
            if cost[j] > cost[i]:
                w = (grid - cost[i]) / (cost[j] - cost[i])
                mix = np.where((w >= 0) & (w <= 1), quality[i] + w * (quality[j] - quality[i]), 0.0)
                best = np.maximum(best, mix)
    assert aiq(cost, quality, cost_max=1.0) == pytest.approx(np.trapezoid(best, grid), abs=1e-3)
