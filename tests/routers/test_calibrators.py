import json

import numpy as np
import pytest
from scipy.special import expit, logit, softmax

from routers.calibrators import (
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureScaling,
    VectorScaling,
    load_calibrator,
)


def _sample_labels(rng, probs):
    """One label per row drawn from that row's distribution."""
    u = rng.random((probs.shape[0], 1))
    return (probs.cumsum(axis=1) < u).sum(axis=1).clip(max=probs.shape[1] - 1)


def _roundtrip(calibrator):
    """Through JSON text, as an artifact on disk would be."""
    return load_calibrator(json.loads(json.dumps(calibrator.to_dict())))


# --- temperature scaling ---------------------------------------------------------------


def test_temperature_recovers_true_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(5000, 4))
    gold = _sample_labels(rng, softmax(logits / 2.0, axis=1))
    ts = TemperatureScaling().fit(logits, gold)
    assert ts.temperature == pytest.approx(2.0, abs=0.15)


def test_temperature_stays_one_when_already_calibrated():
    rng = np.random.default_rng(1)
    logprobs = np.log(softmax(rng.normal(scale=2.0, size=(20000, 3)), axis=1))
    gold = _sample_labels(rng, np.exp(logprobs))
    ts = TemperatureScaling().fit(logprobs, gold)
    assert ts.temperature == pytest.approx(1.0, abs=0.1)


def test_temperature_probs_and_confidence():
    ts = TemperatureScaling(temperature=2.0)
    z = np.log(np.array([0.8, 0.2]))
    expected = softmax(z / 2.0)
    assert ts.probs(z) == pytest.approx(expected)
    assert ts.confidence(z) == pytest.approx(expected.max())
    assert ts.confidence(np.stack([z, z])) == pytest.approx([expected.max()] * 2)


def test_temperature_rejects_bad_gold_index():
    with pytest.raises(ValueError, match="gold_index values"):
        TemperatureScaling().fit(np.zeros((2, 3)), np.array([0, 3]))


# --- vector scaling --------------------------------------------------------------------


def test_vector_scaling_keeps_a_calibrated_input():
    rng = np.random.default_rng(2)
    logprobs = np.log(softmax(rng.normal(scale=2.0, size=(20000, 3)), axis=1))
    gold = _sample_labels(rng, np.exp(logprobs))
    vs = VectorScaling().fit(logprobs, gold)
    assert vs.weights == pytest.approx(np.ones(3), abs=0.08)
    assert vs.biases - vs.biases.mean() == pytest.approx(np.zeros(3), abs=0.08)
    assert vs.probs(logprobs) == pytest.approx(np.exp(logprobs), abs=0.03)


def test_vector_scaling_undoes_a_label_bias_and_overconfidence():
    """The model adds +1.5 to label 0 and doubles every logit: vector scaling learns both back,
    which also fixes the answers the bias flipped (temperature scaling cannot)."""
    rng = np.random.default_rng(3)
    true = rng.normal(scale=1.5, size=(20000, 2))
    gold = _sample_labels(rng, softmax(true, axis=1))
    shown = 2.0 * true + np.array([1.5, 0.0])
    vs = VectorScaling().fit(shown, gold)
    recovered = vs.probs(shown)
    assert recovered == pytest.approx(softmax(true, axis=1), abs=0.03)
    assert (shown.argmax(axis=1) == true.argmax(axis=1)).mean() < 0.9  # the bias flipped over 10% of answers
    assert (recovered.argmax(axis=1) == true.argmax(axis=1)).mean() > 0.99
    ts = TemperatureScaling().fit(shown, gold)
    assert (ts.probs(shown).argmax(axis=1) == shown.argmax(axis=1)).all()


def test_vector_scaling_ignores_a_per_item_shift_and_roundtrips():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(500, 4))
    vs = VectorScaling().fit(z, _sample_labels(rng, softmax(z, axis=1)))
    shifted = z + rng.normal(scale=5.0, size=(500, 1))  # unnormalised scores of the same items
    np.testing.assert_allclose(vs.probs(shifted), vs.probs(z), atol=1e-12)
    np.testing.assert_array_equal(_roundtrip(vs).probs(z), vs.probs(z))


# --- Platt -----------------------------------------------------------------------------


def test_platt_recovers_known_sigmoid():
    rng = np.random.default_rng(2)
    x = rng.normal(size=20000)
    correct = rng.random(20000) < expit(1.5 * x - 0.5)
    platt = PlattCalibrator().fit(x, correct)
    assert platt.coef[0] == pytest.approx(1.5, abs=0.1)
    assert platt.intercept == pytest.approx(-0.5, abs=0.1)


def test_platt_leaves_calibrated_scores_in_logit_space_alone():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.02, 0.98, size=20000)
    correct = rng.random(20000) < conf
    platt = PlattCalibrator().fit(logit(conf)[:, None], correct)
    assert np.mean(np.abs(platt.predict(logit(conf)[:, None]) - conf)) < 0.02


def test_platt_needs_both_outcomes_and_matching_columns():
    with pytest.raises(ValueError, match="both correct and incorrect"):
        PlattCalibrator().fit(np.zeros((5, 2)), np.ones(5, dtype=bool))
    platt = PlattCalibrator().fit(np.arange(10.0).reshape(5, 2), [0, 1, 0, 1, 1])
    with pytest.raises(ValueError, match="expects 2"):
        platt.predict(np.zeros((3, 3)))


# --- isotonic --------------------------------------------------------------------------


def test_isotonic_is_monotone_and_keeps_calibrated_input():
    rng = np.random.default_rng(4)
    conf = rng.random(5000)
    correct = rng.random(5000) < conf
    iso = IsotonicCalibrator().fit(conf, correct)
    grid = np.linspace(-0.5, 1.5, 401)  # includes out-of-range scores: clipped
    out = iso.predict(grid)
    assert np.all(np.diff(out) >= 0)
    assert out.min() >= 0 and out.max() <= 1
    assert np.mean(np.abs(iso.predict(conf) - conf)) < 0.05


def test_isotonic_refuses_small_sets():
    with pytest.raises(ValueError, match="got 199 labelled examples, needs at least 200"):
        IsotonicCalibrator().fit(np.linspace(0, 1, 199), np.ones(199, dtype=bool))
    IsotonicCalibrator(min_labels=10).fit(np.linspace(0, 1, 10), [0, 0, 0, 1, 0, 1, 1, 1, 1, 1])


# --- serialisation ---------------------------------------------------------------------


def test_every_calibrator_roundtrips_to_identical_predictions():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(300, 3))
    gold = _sample_labels(rng, softmax(logits, axis=1))
    ts = TemperatureScaling().fit(logits, gold)
    ts2 = _roundtrip(ts)
    assert isinstance(ts2, TemperatureScaling)
    np.testing.assert_array_equal(ts2.probs(logits), ts.probs(logits))

    x = rng.normal(size=(300, 2))
    correct = rng.random(300) < expit(x[:, 0] - x[:, 1])
    platt = PlattCalibrator().fit(x, correct)
    platt2 = _roundtrip(platt)
    assert isinstance(platt2, PlattCalibrator)
    np.testing.assert_array_equal(platt2.predict(x), platt.predict(x))

    score = rng.random(300)
    iso = IsotonicCalibrator().fit(score, rng.random(300) < score)
    iso2 = _roundtrip(iso)
    assert isinstance(iso2, IsotonicCalibrator)
    np.testing.assert_array_equal(iso2.predict(score), iso.predict(score))


def test_isotonic_numpy_predictions_match_sklearn():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(6)
    score = rng.random(400)
    correct = rng.random(400) < score
    sk = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
    sk.fit(score, correct.astype(float))
    grid = np.linspace(-0.2, 1.2, 300)
    assert IsotonicCalibrator().fit(score, correct).predict(grid) == pytest.approx(sk.predict(grid))


def test_load_calibrator_rejects_unknown_kind_and_unfitted():
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        load_calibrator({"kind": "magic"})
    with pytest.raises(RuntimeError, match="not fitted"):
        PlattCalibrator().to_dict()
