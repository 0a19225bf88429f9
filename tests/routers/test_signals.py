import math

import numpy as np
import pytest
from scipy.special import softmax

from routers.signals import batch_prior, debias, label_signals, signal_matrix, span_signals


def test_uniform_distribution_has_full_entropy_and_no_margin():
    s = label_signals(np.full(4, 0.25))
    assert s["entropy"] == pytest.approx(1.0)
    assert s["margin"] == pytest.approx(0.0)
    assert s["top"] == pytest.approx(0.25)


def test_certain_and_single_label_distributions():
    s = label_signals([0.0, 1.0, 0.0])
    assert s == pytest.approx({"top": 1.0, "margin": 1.0, "entropy": 0.0})
    assert label_signals([1.0]) == pytest.approx({"top": 1.0, "margin": 1.0, "entropy": 0.0})


def test_label_signals_known_values():
    s = label_signals([0.7, 0.2, 0.1])
    assert s["margin"] == pytest.approx(0.5)
    expected = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)) / math.log(3)
    assert s["entropy"] == pytest.approx(expected)


def test_label_signals_rejects_unnormalised():
    with pytest.raises(ValueError, match="sum to 1"):
        label_signals([0.5, 0.7])


def test_debias_with_own_distribution_as_prior_gives_uniform():
    logprobs = np.log([0.7, 0.2, 0.1])
    assert debias(logprobs, logprobs) == pytest.approx(np.full(3, 1 / 3))


def test_debias_batch_shapes_and_normalisation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3))
    prior = batch_prior(logits)
    assert prior.shape == (3,)
    assert np.exp(prior).sum() == pytest.approx(1.0)
    assert np.exp(prior) == pytest.approx(softmax(logits, axis=1).mean(axis=0))
    out = debias(logits, prior)
    assert out.shape == (5, 3)
    assert out.sum(axis=1) == pytest.approx(np.ones(5))


def test_contextual_calibration_removes_constant_label_bias_exactly():
    # A model that adds +2 to label 0 whatever the input; a content-free input shows that
    # bias alone, and subtracting it recovers the unbiased distributions.
    rng = np.random.default_rng(1)
    true_logits = rng.normal(size=(50, 3))
    bias = np.array([2.0, 0.0, 0.0])
    content_free = np.log(softmax(bias))
    assert debias(true_logits + bias, content_free) == pytest.approx(softmax(true_logits, axis=1))


def test_batch_calibration_reduces_label_bias():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(size=(2000, 3))
    truth = true_logits.argmax(axis=1)
    biased = true_logits + np.array([2.0, 0.0, 0.0])
    fixed = debias(biased, batch_prior(biased))
    share_before = np.mean(biased.argmax(axis=1) == 0)
    share_after = np.mean(fixed.argmax(axis=1) == 0)
    assert share_before > 0.7 and share_after < 0.5
    assert np.mean(fixed.argmax(axis=1) == truth) > np.mean(biased.argmax(axis=1) == truth) + 0.2


def test_batch_prior_of_single_item_equals_its_distribution():
    logits = np.array([1.0, 0.0, -1.0])
    assert np.exp(batch_prior(logits)) == pytest.approx(softmax(logits))


def test_span_quantiles_on_known_array():
    lp = -np.arange(11, dtype=float)  # 0, -1, ..., -10
    s = span_signals(lp)
    assert s == pytest.approx(
        {"min": -10.0, "q10": -9.0, "q25": -7.5, "median": -5.0, "n_tokens": 11.0}
    )


def test_span_single_token():
    assert span_signals([-0.5]) == pytest.approx(
        {"min": -0.5, "q10": -0.5, "q25": -0.5, "median": -0.5, "n_tokens": 1.0}
    )


def test_empty_span_raises_clearly():
    with pytest.raises(ValueError, match="at least one token"):
        span_signals([])


def test_signal_matrix_stacks_in_name_order():
    items = [
        {"top": 0.9, "margin": 0.8, "entropy": 0.1},
        {"top": 0.6, "margin": 0.2, "entropy": 0.9},
    ]
    m = signal_matrix(items, ["margin", "top"])
    assert m.shape == (2, 2)
    assert m == pytest.approx(np.array([[0.8, 0.9], [0.2, 0.6]]))
    assert signal_matrix([], ["top"]).shape == (0, 1)


def test_signal_matrix_names_missing_signal():
    with pytest.raises(ValueError, match="item 1 lacks"):
        signal_matrix([{"top": 1.0}, {"margin": 0.1}], ["top"])
