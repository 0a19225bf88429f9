import math

import numpy as np
import pytest

from routers.metrics import (
    area_under_risk_coverage,
    auroc,
    brier_score,
    expected_calibration_error,
    reliability_table,
    risk_coverage_curve,
)
from routers.plots import plot_reliability, plot_risk_coverage


def test_ece_hand_case():
    # Two bins of width 0.5: [0.2, 0.4] accuracy 1/2, [0.6, 0.8, 0.9] accuracy 2/3.
    conf = [0.2, 0.4, 0.6, 0.8, 0.9]
    correct = [1, 0, 1, 1, 0]
    low = abs(0.5 - 0.3)
    high = abs(2 / 3 - (0.6 + 0.8 + 0.9) / 3)
    expected = (2 * low + 3 * high) / 5
    assert expected_calibration_error(conf, correct, n_bins=2) == pytest.approx(expected)


def test_ece_near_zero_when_perfectly_calibrated():
    rng = np.random.default_rng(0)
    conf = rng.random(200000)
    correct = rng.random(200000) < conf
    assert expected_calibration_error(conf, correct) < 0.01


def test_ece_of_overconfident_model():
    # Always says 0.9, right half the time.
    assert expected_calibration_error([0.9] * 4, [1, 0, 1, 0]) == pytest.approx(0.4)


def test_reliability_table_bins():
    table = reliability_table([0.05, 0.15, 0.95, 1.0], [1, 0, 1, 1], n_bins=10)
    assert len(table) == 10
    first, second, last = table[0], table[1], table[-1]
    assert (first.lower, first.upper, first.count, first.accuracy) == (0.0, 0.1, 1, 1.0)
    assert second.count == 1 and second.accuracy == 0.0
    assert last.count == 2 and last.mean_conf == pytest.approx(0.975)  # 1.0 lands in the last bin
    assert table[5].count == 0 and math.isnan(table[5].accuracy)


def test_brier_hand_case():
    assert brier_score([0.9, 0.2, 0.5], [1, 0, 1]) == pytest.approx((0.01 + 0.04 + 0.25) / 3)
    assert brier_score([1.0, 1.0], [True, True]) == 0.0


def test_auroc_perfect_random_and_undefined():
    assert auroc([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]) == 1.0
    rng = np.random.default_rng(1)
    assert auroc(rng.random(20000), rng.random(20000) < 0.5) == pytest.approx(0.5, abs=0.02)
    with pytest.warns(RuntimeWarning, match="all 3 answers are correct"):
        assert math.isnan(auroc([0.1, 0.5, 0.9], [1, 1, 1]))


def test_risk_coverage_hand_case():
    coverage, risk, thresholds = risk_coverage_curve([0.6, 0.9, 0.7, 0.8], [1, 1, 0, 1])
    assert coverage == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert risk == pytest.approx([0.0, 0.0, 1 / 3, 1 / 4])
    assert thresholds == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert area_under_risk_coverage([0.6, 0.9, 0.7, 0.8], [1, 1, 0, 1]) == pytest.approx(
        (0 + 0 + 1 / 3 + 1 / 4) / 4
    )


def test_risk_coverage_groups_ties():
    coverage, risk, thresholds = risk_coverage_curve([0.8, 0.8, 0.5], [1, 0, 1])
    assert coverage == pytest.approx([2 / 3, 1.0])
    assert risk == pytest.approx([0.5, 1 / 3])
    assert thresholds == pytest.approx([0.8, 0.5])


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score([1.5], [1])
    with pytest.raises(ValueError, match="equal length"):
        expected_calibration_error([0.5, 0.5], [1])


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(2)
    conf = rng.random(500)
    correct = rng.random(500) < conf
    rel = plot_reliability(conf, correct, tmp_path / "rel.png", title="test")
    rc = plot_risk_coverage(
        {"calibrated": (conf, correct), "random": (rng.random(500), correct)},
        tmp_path / "sub" / "rc.png",
        title="test",
    )
    for path in (rel, rc):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
