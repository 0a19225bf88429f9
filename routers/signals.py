"""Confidence signals computed from a small model's own output (no extra model calls).

Two kinds of output give two kinds of signals:

- a distribution over a task's labels (classification, flagging): `label_signals`, with
  optional label-bias correction first (`debias`, `batch_prior`);
- generated text with per-token log-probabilities (extraction, QA): `span_signals`.

`signal_matrix` stacks chosen signals into the feature matrix a calibrator is fitted on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp, softmax

__all__ = ["label_signals", "debias", "batch_prior", "span_signals", "signal_matrix"]

# A distribution that is off by more than this is a caller's bug, not rounding.
_SUM_TOLERANCE = 1e-6


def label_signals(probs: ArrayLike) -> dict[str, float]:
    """Signals of one item's normalised label distribution.

    Args:
        probs: 1-D array of k >= 1 label probabilities summing to 1.

    Returns:
        ``top`` (highest probability), ``margin`` (top minus second highest; equals top
        when there is a single label) and ``entropy`` normalised to [0, 1] by log(k)
        (0 for a single label), so values are comparable across tasks with different k.

    Raises:
        ValueError: if ``probs`` is not a non-empty 1-D distribution.
    """
    p = np.asarray(probs, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probs must be a non-empty 1-D array, got shape {p.shape}")
    if np.any(p < 0) or not math.isclose(p.sum(), 1.0, abs_tol=_SUM_TOLERANCE):
        raise ValueError(
            f"probs must be non-negative and sum to 1 (sum is {p.sum():.6g}); "
            "normalise first, e.g. with debias() or scipy.special.softmax"
        )
    ordered = np.sort(p)[::-1]
    top = float(ordered[0])
    margin = top - float(ordered[1]) if p.size > 1 else top
    k = p.size
    nonzero = p[p > 0]  # 0 * log 0 = 0
    entropy = float(-(nonzero * np.log(nonzero)).sum() / math.log(k)) if k > 1 else 0.0
    return {"top": top, "margin": margin, "entropy": min(max(entropy, 0.0), 1.0)}


def debias(label_logprobs: ArrayLike, prior_logprobs: ArrayLike) -> np.ndarray:
    """Remove a model's label bias and renormalise (contextual / batch calibration).

    Tiny models prefer some labels whatever the input (Zhao et al. 2021, "Calibrate
    before use"; Zhou et al. 2023, "Batch calibration"). Dividing each item's label
    distribution by the model's prior over labels, i.e. subtracting log-priors, cancels
    that preference; a softmax renormalises.

    Args:
        label_logprobs: log-probabilities (or any logits) of the labels, shape [k] or [n, k].
        prior_logprobs: log of the label prior, shape [k]: from a content-free input
            ("N/A") scored with the same prompt, or ``batch_prior`` over a batch.

    Returns:
        Debiased probabilities with the shape of ``label_logprobs``; rows sum to 1.
    """
    logits = np.asarray(label_logprobs, dtype=float)
    prior = np.asarray(prior_logprobs, dtype=float)
    if logits.ndim not in (1, 2) or prior.ndim != 1 or logits.shape[-1] != prior.shape[0]:
        raise ValueError(
            f"label_logprobs must be [k] or [n, k] and prior_logprobs [k]; "
            f"got {logits.shape} and {prior.shape}"
        )
    return softmax(logits - prior, axis=-1)


def batch_prior(label_logprobs: ArrayLike) -> np.ndarray:
    """Estimate the label prior from a batch: log of the mean per-item distribution.

    Args:
        label_logprobs: shape [n, k] (or [k], a batch of one).

    Returns:
        Log-prior of shape [k], ready for ``debias``.
    """
    logits = np.atleast_2d(np.asarray(label_logprobs, dtype=float))
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"label_logprobs must be [n, k] with n, k >= 1, got {logits.shape}")
    # Normalise each row in log space, then average in probability space (logsumexp).
    row_logprobs = logits - logsumexp(logits, axis=1, keepdims=True)
    return logsumexp(row_logprobs, axis=0) - math.log(logits.shape[0])


def span_signals(token_logprobs: ArrayLike) -> dict[str, float]:
    """Signals of a generated span from its per-token log-probabilities.

    Quantiles rather than mean or sum: a sum falls with every extra token and a mean is
    diluted by long runs of easy tokens, while one low-probability token is what marks a
    made-up name or number.

    Returns:
        ``min``, ``q10``, ``q25``, ``median`` of the log-probabilities, and ``n_tokens``.

    Raises:
        ValueError: if there are no tokens (the model generated nothing to score).
    """
    lp = np.asarray(token_logprobs, dtype=float).ravel()
    if lp.size == 0:
        raise ValueError(
            "span_signals needs at least one token log-probability; the generated span is "
            "empty, so treat the answer as missing (escalate) instead of scoring it"
        )
    if np.any(np.isnan(lp)) or np.any(lp > 1e-6):
        raise ValueError("token_logprobs must be log-probabilities (<= 0, not NaN)")
    q10, q25, median = np.quantile(lp, [0.10, 0.25, 0.50])
    return {
        "min": float(lp.min()),
        "q10": float(q10),
        "q25": float(q25),
        "median": float(median),
        "n_tokens": float(lp.size),
    }


def signal_matrix(signals: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    """Stack the named signals of each item into a feature matrix of shape [n, len(names)].

    Raises:
        ValueError: naming the first item that lacks a requested signal.
    """
    if not names:
        raise ValueError("names must list at least one signal")
    rows = []
    for i, item in enumerate(signals):
        missing = [name for name in names if name not in item]
        if missing:
            raise ValueError(f"item {i} lacks signal(s) {missing}; it has {sorted(item)}")
        rows.append([float(item[name]) for name in names])
    return np.asarray(rows, dtype=float).reshape(len(rows), len(names))
