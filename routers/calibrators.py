"""Calibrators: turn raw signals into P(answer is correct), fitted on labelled data.

Each calibrator serialises to a plain JSON-able dict with a ``"kind"`` key (``to_dict``)
and is rebuilt from it without pickle (``from_dict`` / ``load_calibrator``), so fitted
calibrators can be stored as versioned artifacts and read back by any process.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

__all__ = [
    "Calibrator",
    "TemperatureScaling",
    "VectorScaling",
    "PlattCalibrator",
    "IsotonicCalibrator",
    "load_calibrator",
]


def _not_fitted(name: str) -> RuntimeError:
    return RuntimeError(f"{name} is not fitted; call fit() or build it with from_dict()")


def _check_kind(d: dict[str, Any], kind: str) -> None:
    if d.get("kind") != kind:
        raise ValueError(f"expected a calibrator dict with kind={kind!r}, got {d.get('kind')!r}")


def _as_bool_labels(correct: ArrayLike, n: int) -> np.ndarray:
    y = np.asarray(correct)
    if y.shape != (n,):
        raise ValueError(f"expected {n} correctness labels, got shape {y.shape}")
    if not np.isin(y, [0, 1]).all():
        raise ValueError("correctness labels must be booleans or 0/1")
    return y.astype(bool)


class TemperatureScaling:
    """One temperature T > 0 shared by all labels: probs = softmax(logprobs / T).

    T > 1 softens an over-confident model, T < 1 sharpens an under-confident one; the
    ranking of labels never changes, so accuracy is untouched.
    """

    kind: ClassVar[str] = "temperature"
    # Bounds on log T: wide enough for any sane model, narrow enough to stay finite.
    LOG_T_BOUNDS: ClassVar[tuple[float, float]] = (math.log(1e-2), math.log(1e2))

    def __init__(self, temperature: float | None = None, n_fit: int | None = None) -> None:
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.n_fit = n_fit

    def fit(self, label_logprobs: ArrayLike, gold_index: ArrayLike) -> TemperatureScaling:
        """Find T minimising the negative log-likelihood of the gold labels.

        Args:
            label_logprobs: shape [n, k], the model's label log-probabilities or logits.
            gold_index: shape [n], index of the correct label of each item.
        """
        z = np.asarray(label_logprobs, dtype=float)
        gold = np.asarray(gold_index)
        if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
            raise ValueError(f"label_logprobs must be [n, k] with n >= 1, k >= 2; got {z.shape}")
        if gold.shape != (z.shape[0],) or not np.issubdtype(gold.dtype, np.integer):
            raise ValueError(f"gold_index must be {z.shape[0]} integers, got {gold.shape}")
        if gold.min() < 0 or gold.max() >= z.shape[1]:
            raise ValueError(f"gold_index values must lie in [0, {z.shape[1] - 1}]")
        rows = np.arange(z.shape[0])

        def nll(log_t: float) -> float:
            return -float(log_softmax(z / math.exp(log_t), axis=1)[rows, gold].mean())

        # Optimising log T keeps T positive and makes the search scale-free.
        result = minimize_scalar(nll, bounds=self.LOG_T_BOUNDS, method="bounded")
        self.temperature = float(math.exp(result.x))
        self.n_fit = int(z.shape[0])
        return self

    def probs(self, label_logprobs: ArrayLike) -> np.ndarray:
        """Tempered label distributions, same shape as the input ([k] or [n, k])."""
        if self.temperature is None:
            raise _not_fitted("TemperatureScaling")
        z = np.asarray(label_logprobs, dtype=float)
        return np.exp(log_softmax(z / self.temperature, axis=-1))

    def confidence(self, label_logprobs: ArrayLike) -> np.ndarray | float:
        """Top tempered probability: a float for one item [k], an array for [n, k]."""
        top = self.probs(label_logprobs).max(axis=-1)
        return float(top) if np.ndim(top) == 0 else top

    def to_dict(self) -> dict[str, Any]:
        if self.temperature is None:
            raise _not_fitted("TemperatureScaling")
        return {"kind": self.kind, "temperature": self.temperature, "n_fit": self.n_fit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TemperatureScaling:
        _check_kind(d, cls.kind)
        return cls(temperature=float(d["temperature"]), n_fit=d.get("n_fit"))


class VectorScaling:
    """One scale and one bias per label: probs = softmax(w * log_softmax(z) + b) (Guo et al., 2017).

    Unlike temperature scaling it is label-aware: it learns the model's preference for some labels
    (what batch or contextual calibration corrects) and its over- or under-confidence together, so
    it may change the predicted label, and it needs no separate debiasing. An L2 pull toward the
    identity (w = 1, b = 0), worth `l2` items of evidence, keeps it sane on small fit sets and
    many labels (a label with no fit items is not pushed to minus infinity).
    """

    kind: ClassVar[str] = "vector"

    def __init__(self, weights: ArrayLike | None = None, biases: ArrayLike | None = None,
                 l2: float = 5.0, n_fit: int | None = None) -> None:
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.biases = None if biases is None else np.asarray(biases, dtype=float)
        self.l2 = l2
        self.n_fit = n_fit

    def fit(self, label_logprobs: ArrayLike, gold_index: ArrayLike) -> VectorScaling:
        """Minimise the gold labels' negative log-likelihood (plus the L2 pull) with L-BFGS."""
        z = _normalised(label_logprobs)
        gold = np.asarray(gold_index)
        if gold.shape != (z.shape[0],) or not np.issubdtype(gold.dtype, np.integer):
            raise ValueError(f"gold_index must be {z.shape[0]} integers, got {gold.shape}")
        if gold.min() < 0 or gold.max() >= z.shape[1]:
            raise ValueError(f"gold_index values must lie in [0, {z.shape[1] - 1}]")
        n, k = z.shape
        onehot = np.eye(k)[gold]
        strength = self.l2 / n  # the loss is a mean over items; the prior counts as l2 items

        def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:k], theta[k:]
            logp = log_softmax(z * w + b, axis=1)
            residual = (np.exp(logp) - onehot) / n  # d(mean NLL) / d(scaled logits)
            loss = -float((logp * onehot).sum() / n) + strength * float(((w - 1) ** 2).sum() + (b ** 2).sum())
            grad = np.concatenate([(residual * z).sum(axis=0) + 2 * strength * (w - 1),
                                   residual.sum(axis=0) + 2 * strength * b])
            return loss, grad

        result = minimize(loss_and_grad, np.concatenate([np.ones(k), np.zeros(k)]), jac=True, method="L-BFGS-B")
        self.weights, self.biases, self.n_fit = result.x[:k], result.x[k:], int(n)
        return self

    def probs(self, label_logprobs: ArrayLike) -> np.ndarray:
        """Calibrated label distributions [n, k]."""
        if self.weights is None or self.biases is None:
            raise _not_fitted("VectorScaling")
        return np.exp(log_softmax(_normalised(label_logprobs) * self.weights + self.biases, axis=1))

    def confidence(self, label_logprobs: ArrayLike) -> np.ndarray:
        return self.probs(label_logprobs).max(axis=1)

    def to_dict(self) -> dict[str, Any]:
        if self.weights is None or self.biases is None:
            raise _not_fitted("VectorScaling")
        return {"kind": self.kind, "weights": self.weights.tolist(), "biases": self.biases.tolist(),
                "l2": self.l2, "n_fit": self.n_fit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VectorScaling:
        _check_kind(d, cls.kind)
        return cls(weights=d["weights"], biases=d["biases"], l2=float(d.get("l2", 5.0)), n_fit=d.get("n_fit"))


def _normalised(label_logprobs: ArrayLike) -> np.ndarray:
    """Log-probs normalised per item: a per-item constant shift (as in unnormalised scores) is harmless."""
    z = np.atleast_2d(np.asarray(label_logprobs, dtype=float))
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"label_logprobs must be [n, k] with n >= 1, k >= 2; got {z.shape}")
    return log_softmax(z, axis=1)


class PlattCalibrator:
    """Logistic regression from a signal matrix X [n, m] to P(correct).

    Probability-like signals (``top``) are best given in logit space
    (``scipy.special.logit``), where an already calibrated score is fitted exactly by
    coefficient 1 and intercept 0. A 1-D X is read as a single signal column.
    """

    kind: ClassVar[str] = "platt"

    def __init__(
        self,
        c: float = 1e4,
        coef: ArrayLike | None = None,
        intercept: float | None = None,
        n_fit: int | None = None,
    ) -> None:
        # Large C = almost no regularisation: classic Platt scaling fits a plain
        # maximum-likelihood sigmoid; lower C if few labels and many signals.
        self.c = float(c)
        self.coef = None if coef is None else np.asarray(coef, dtype=float).ravel()
        self.intercept = None if intercept is None else float(intercept)
        self.n_fit = n_fit

    @staticmethod
    def _as_matrix(x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if x.ndim != 2:
            raise ValueError(f"X must be [n, m] (or [n] for one signal), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("X contains NaN or infinite values; clip probabilities before logit")
        return x

    def fit(self, x: ArrayLike, correct: ArrayLike) -> PlattCalibrator:
        """Fit on signals X [n, m] and booleans ``correct`` [n]; both outcomes must occur."""
        x = self._as_matrix(x)
        y = _as_bool_labels(correct, x.shape[0])
        if y.all() or not y.any():
            raise ValueError(
                f"PlattCalibrator needs both correct and incorrect examples; all {len(y)} "
                f"labels are {bool(y[0]) if len(y) else 'missing'}"
            )
        model = LogisticRegression(C=self.c, max_iter=1000).fit(x, y)
        self.coef = model.coef_.ravel().astype(float)
        self.intercept = float(model.intercept_[0])
        self.n_fit = int(x.shape[0])
        return self

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Calibrated confidence in [0, 1] for each row of X."""
        if self.coef is None or self.intercept is None:
            raise _not_fitted("PlattCalibrator")
        x = self._as_matrix(x)
        if x.shape[1] != self.coef.size:
            raise ValueError(f"X has {x.shape[1]} columns; calibrator expects {self.coef.size}")
        # Computed here rather than by sklearn so a dict-loaded calibrator predicts identically.
        return expit(x @ self.coef + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        if self.coef is None or self.intercept is None:
            raise _not_fitted("PlattCalibrator")
        return {
            "kind": self.kind,
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "c": self.c,
            "n_fit": self.n_fit,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlattCalibrator:
        _check_kind(d, cls.kind)
        return cls(c=d.get("c", 1e4), coef=d["coef"], intercept=d["intercept"],
                   n_fit=d.get("n_fit"))


class IsotonicCalibrator:
    """Monotone step map from a 1-D score to P(correct) (isotonic regression).

    Flexible enough to fix any monotone miscalibration, and for the same reason it
    overfits small sets, so fitting refuses fewer than ``min_labels`` examples.
    """

    kind: ClassVar[str] = "isotonic"

    def __init__(
        self,
        min_labels: int = 200,
        x_thresholds: ArrayLike | None = None,
        y_thresholds: ArrayLike | None = None,
        n_fit: int | None = None,
    ) -> None:
        self.min_labels = int(min_labels)
        self.x_thresholds = None if x_thresholds is None else np.asarray(x_thresholds, dtype=float)
        self.y_thresholds = None if y_thresholds is None else np.asarray(y_thresholds, dtype=float)
        self.n_fit = n_fit

    def fit(self, score: ArrayLike, correct: ArrayLike) -> IsotonicCalibrator:
        """Fit on a 1-D score [n] and booleans ``correct`` [n], n >= ``min_labels``."""
        s = np.asarray(score, dtype=float)
        if s.ndim != 1:
            raise ValueError(f"score must be 1-D, got shape {s.shape}")
        y = _as_bool_labels(correct, s.size)
        if s.size < self.min_labels:
            raise ValueError(
                f"IsotonicCalibrator got {s.size} labelled examples, needs at least "
                f"{self.min_labels} (it overfits small sets); use PlattCalibrator or label more"
            )
        model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        model.fit(s, y.astype(float))
        self.x_thresholds = np.asarray(model.X_thresholds_, dtype=float)
        self.y_thresholds = np.asarray(model.y_thresholds_, dtype=float)
        self.n_fit = int(s.size)
        return self

    def predict(self, score: ArrayLike) -> np.ndarray:
        """Calibrated confidence in [0, 1]; scores outside the fitted range are clipped."""
        if self.x_thresholds is None or self.y_thresholds is None:
            raise _not_fitted("IsotonicCalibrator")
        # np.interp clamps to the end values, which is IsotonicRegression's "clip".
        return np.interp(np.asarray(score, dtype=float), self.x_thresholds, self.y_thresholds)

    def to_dict(self) -> dict[str, Any]:
        if self.x_thresholds is None or self.y_thresholds is None:
            raise _not_fitted("IsotonicCalibrator")
        return {
            "kind": self.kind,
            "x_thresholds": self.x_thresholds.tolist(),
            "y_thresholds": self.y_thresholds.tolist(),
            "min_labels": self.min_labels,
            "n_fit": self.n_fit,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IsotonicCalibrator:
        _check_kind(d, cls.kind)
        return cls(
            min_labels=d.get("min_labels", 200),
            x_thresholds=d["x_thresholds"],
            y_thresholds=d["y_thresholds"],
            n_fit=d.get("n_fit"),
        )


Calibrator = TemperatureScaling | VectorScaling | PlattCalibrator | IsotonicCalibrator
_KINDS: dict[str, type[Calibrator]] = {
    cls.kind: cls for cls in (TemperatureScaling, VectorScaling, PlattCalibrator, IsotonicCalibrator)
}


def load_calibrator(d: dict[str, Any]) -> Calibrator:
    """Rebuild any calibrator from its ``to_dict()`` output, dispatching on ``d["kind"]``."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in _KINDS:
        raise ValueError(f"unknown calibrator kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind].from_dict(d)
