"""`--method auto`: the calibrator is chosen by cross-validated Brier score on the fit items."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from orchestrator.calibration.select import CANDIDATES, choose_method

LABELS = ["a", "b", "c"]


def per_label_scaled(n: int, scales: tuple[float, ...], seed: int = 0):
    """Gold drawn from softmax(true logits); the model reports each label's logit times its own
    scale: a label-dependent miscalibration that only a per-label calibrator can undo."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 2.0, size=(n, len(scales)))
    gold = np.array([rng.choice(len(scales), p=p) for p in softmax(true, axis=1)])
    return np.log(softmax(true * np.array(scales), axis=1)), gold


def test_a_per_label_miscalibration_is_given_to_vector_scaling():
    z, gold = per_label_scaled(1500, scales=(0.3, 1.0, 3.0))
    method, scores = choose_method(z, gold, LABELS)
    assert method == "vector"
    assert set(scores) == set(CANDIDATES)
    assert scores["vector"] == min(s for s in scores.values() if s is not None)


def test_a_method_that_cannot_be_fitted_is_skipped_not_chosen():
    z, gold = per_label_scaled(120, scales=(1.0, 1.0, 1.0), seed=1)  # folds of 96 items: isotonic needs more
    method, scores = choose_method(z, gold, LABELS)
    assert scores["isotonic"] is None and method != "isotonic"


def test_a_fit_split_too_small_to_cross_validate_gets_temperature_scaling():
    z, gold = per_label_scaled(30, scales=(0.3, 1.0, 3.0), seed=2)  # folds of 24 items: nothing fits
    method, scores = choose_method(z, gold, LABELS)
    assert method == "temperature" and all(s is None for s in scores.values())
