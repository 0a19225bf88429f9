"""Calibration: turn a small model's label log-probabilities into a versioned decision artifact.

Offline: `label_scoring.collect_label_logprobs` scores labelled items with the tier-1 model, `fit_artifact`
debiases (batch prior), fits a calibrator and a threshold policy on one split,
`evaluate_artifact` measures it on a disjoint split, `artifact_store.ArtifactStore.save` writes it
as JSON. At run time: `ArtifactStore.latest(...)` finds the artifact matching the task, model file
hash, prompt version and exact label list; `apply_artifact` gives (answer, calibrated confidence)
and `threshold_for` the threshold for that answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, PrivateAttr
from scipy.special import logit, softmax

from agents.classify import validate_labels
from agents.errors import InvalidInputError
from routers import (
    BudgetPolicy, ClassThresholds, EscalationRatePolicy, GuaranteedAccuracyPolicy, Threshold, auroc,
    batch_prior, brier_score, expected_calibration_error, load_calibrator,
)
from routers.calibrators import IsotonicCalibrator, PlattCalibrator, TemperatureScaling, VectorScaling
from routers.metrics import area_under_risk_coverage

__all__ = [
    "ARTIFACT_FORMAT", "MIN_FIT_ITEMS", "CalibrationArtifact", "EvaluationReport",
    "apply_artifact", "calibrated_predictions", "evaluate_artifact", "fit_artifact", "labels_id", "threshold_for",
]

ARTIFACT_FORMAT = 1
MIN_FIT_ITEMS = 30  # below this no calibrator or guarantee is worth storing
Method = Literal["temperature", "vector", "platt", "isotonic"]
_FLOOR = 1e-300  # probabilities of exactly 0 become this before taking logs


def labels_id(labels: Sequence[str]) -> str:
    """Short stable id of an ordered label list (order matters: it is the prompt's order)."""
    return hashlib.sha256(json.dumps(list(labels)).encode()).hexdigest()[:12]


# -- the artifact -------------------------------------------------------------------------------

class CalibrationArtifact(BaseModel):
    """Everything needed to turn one item's label log-probs into (answer, confidence, keep?).

    Valid only for the exact `labels` list (same labels, same order), `model_file_hash` and
    `prompt_version`; `ArtifactStore.latest` matches on all of them. `version` is 0 until saved.
    """

    model_config = ConfigDict(extra="forbid")

    format: int = ARTIFACT_FORMAT
    version: int = 0
    created_at: datetime
    task: str
    labels: list[str]
    labels_id: str
    model_file_hash: str
    prompt_version: str
    method: Method
    debias_prior: list[float] | None  # log label prior from the fit split (batch calibration)
    calibrator: dict[str, Any]
    threshold: dict[str, Any]  # Threshold.to_dict() or, with per_class, ClassThresholds.to_dict()
    per_class: bool = False
    policy: str
    fit_metrics: dict[str, float | int | None]
    test_metrics: dict[str, Any] | None = None  # EvaluationReport on a disjoint split, if measured
    source: dict[str, Any] = {}  # what it was fitted on: data, sizes, seed

    _calibrator: Any = PrivateAttr(default=None)

    @property
    def id(self) -> str:
        return f"{self.task}/{self.labels_id}/v{self.version}"

    def calibrator_obj(self):
        if self._calibrator is None:
            self._calibrator = load_calibrator(self.calibrator)
        return self._calibrator

    def thresholds(self) -> Threshold | ClassThresholds:
        return ClassThresholds.from_dict(self.threshold) if self.per_class else Threshold.from_dict(self.threshold)


def _features(probs: np.ndarray) -> np.ndarray:
    """Platt signals of debiased distributions [n, k]: logit(top), margin, normalised entropy."""
    ordered = np.sort(probs, axis=1)[:, ::-1]
    top = ordered[:, 0]
    margin = top - ordered[:, 1]
    safe = np.clip(probs, _FLOOR, 1.0)
    entropy = -(probs * np.log(safe)).sum(axis=1) / math.log(probs.shape[1])
    return np.column_stack([logit(np.clip(top, 1e-6, 1 - 1e-6)), margin, entropy])


def _calibrated(method: str, calibrator, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted label index, calibrated confidence). Only the label-aware vector scaling may
    change the predicted label; the others rank the (debiased) logits and calibrate the top one."""
    if method == "vector":
        probs = calibrator.probs(logits)
        return probs.argmax(axis=1), probs.max(axis=1)
    if method == "temperature":
        conf = np.asarray(calibrator.confidence(logits), dtype=float)
    elif method == "platt":
        conf = calibrator.predict(_features(softmax(logits, axis=1)))
    else:
        conf = calibrator.predict(softmax(logits, axis=1).max(axis=1))
    return logits.argmax(axis=1), np.clip(conf, 0, 1)


def calibrated_predictions(artifact: CalibrationArtifact, logprobs) -> tuple[np.ndarray, np.ndarray]:
    """(predicted label index, calibrated confidence) for each row of log-probs [n, k]."""
    z = _check_logprobs(logprobs, artifact.labels)
    logits = z - np.asarray(artifact.debias_prior) if artifact.debias_prior is not None else z
    return _calibrated(artifact.method, artifact.calibrator_obj(), logits)


def apply_artifact(artifact: CalibrationArtifact, label_logprobs) -> tuple[str, float]:
    """One item at run time: (answer label, calibrated confidence).

    `label_logprobs` is the item's log-probs in `artifact.labels` order, or a mapping label ->
    probability (e.g. an Attempt's `label_probs`); any per-item constant shift is harmless.
    """
    if isinstance(label_logprobs, Mapping):
        missing = [label for label in artifact.labels if label not in label_logprobs]
        if missing or len(label_logprobs) != len(artifact.labels):
            raise InvalidInputError(f"label probabilities are for {sorted(label_logprobs)}; artifact "
                                    f"{artifact.id} is for {artifact.labels}")
        label_logprobs = np.log(np.maximum([label_logprobs[l] for l in artifact.labels], _FLOOR))
    index, conf = calibrated_predictions(artifact, np.atleast_2d(np.asarray(label_logprobs, dtype=float)))
    return artifact.labels[int(index[0])], float(conf[0])


def threshold_for(artifact: CalibrationArtifact, label: str) -> Threshold:
    """The threshold an answer `label` must reach (per-label with per-class artifacts)."""
    t = artifact.thresholds()
    return t.threshold_for(label) if isinstance(t, ClassThresholds) else t


def _check_logprobs(logprobs, labels: Sequence[str]) -> np.ndarray:
    z = np.asarray(logprobs, dtype=float)
    if z.ndim != 2 or z.shape[1] != len(labels) or z.shape[0] == 0:
        raise InvalidInputError(f"log-probs must have shape [n, {len(labels)}] (one column per label), got {z.shape}")
    if not np.isfinite(z).all():
        raise InvalidInputError("log-probs contain NaN or infinite values; drop the items that failed to score")
    return z


def _check_gold(gold_index, n: int, labels: Sequence[str]) -> np.ndarray:
    gold = np.asarray(gold_index)
    if gold.shape != (n,) or (n and not np.issubdtype(gold.dtype, np.integer)):
        raise InvalidInputError(f"gold_index must be {n} integer label indices, got shape {gold.shape}")
    if gold.min() < 0 or gold.max() >= len(labels):
        bad = int(gold[(gold < 0) | (gold >= len(labels))][0])
        raise InvalidInputError(f"gold label index {bad} is outside the task's {len(labels)} labels {list(labels)}")
    return gold


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _quality(conf: np.ndarray, correct: np.ndarray, suffix: str) -> dict[str, float | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # AUROC is undefined on one class: None
        return {f"accuracy{suffix}": float(correct.mean()),
                f"ece{suffix}": expected_calibration_error(conf, correct),
                f"brier{suffix}": brier_score(conf, correct),
                f"auroc{suffix}": _nan_to_none(auroc(conf, correct)),
                f"aurc{suffix}": area_under_risk_coverage(conf, correct)}


def _raw(z: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = softmax(z, axis=1)  # what the tier reports today: normalised label probabilities
    return probs.max(axis=1), probs.argmax(axis=1) == gold


def fit_artifact(task: str, logprobs, gold_index, labels: Sequence[str], model_file_hash: str,
                 prompt_version: str, method: Method = "temperature", target_accuracy: float | None = None,
                 delta: float = 0.1, target_escalation_rate: float | None = None,
                 max_escalation_share: float | None = None, per_class: bool = False, debias: bool = True,
                 min_per_class: int = 100, source: dict[str, Any] | None = None) -> CalibrationArtifact:
    """Fit debiasing, a calibrator and one threshold policy on labelled log-probs [n, k].

    Exactly one policy: `target_accuracy` (learn-then-test guarantee at level 1 - `delta`,
    optionally `per_class`), `target_escalation_rate`, or `max_escalation_share`.

    Raises:
        InvalidInputError: too few items, a single gold class, gold labels outside `labels`,
            no or several policies, or a calibrator that cannot be fitted on this data.
    """
    labels = validate_labels(list(labels))
    z = _check_logprobs(logprobs, labels)
    gold = _check_gold(gold_index, z.shape[0], labels)
    if z.shape[0] < MIN_FIT_ITEMS:
        raise InvalidInputError(f"{z.shape[0]} labelled items are too few to calibrate on; give at least {MIN_FIT_ITEMS}")
    if np.unique(gold).size < 2:
        raise InvalidInputError(f"every labelled item has the same label {labels[int(gold[0])]!r}; calibration needs "
                                "items of at least two labels (the split may be too small or not stratified)")
    chosen = [p for p in (target_accuracy, target_escalation_rate, max_escalation_share) if p is not None]
    if len(chosen) != 1:
        raise InvalidInputError("choose exactly one threshold policy: target_accuracy, target_escalation_rate "
                                f"or max_escalation_share (got {len(chosen)})")
    if per_class and target_accuracy is None:
        raise InvalidInputError("per_class thresholds need target_accuracy (a guarantee per predicted label)")
    if method not in ("temperature", "vector", "platt", "isotonic"):
        raise InvalidInputError(f"unknown calibration method {method!r}; use temperature, vector, platt or isotonic")

    # Vector scaling learns the label bias itself; the others calibrate batch-debiased logits.
    prior = batch_prior(z) if debias and method != "vector" else None
    logits = z - prior if prior is not None else z
    probs = softmax(logits, axis=1)
    correct_before = logits.argmax(axis=1) == gold
    try:
        if method == "temperature":
            calibrator = TemperatureScaling().fit(logits, gold)
        elif method == "vector":
            calibrator = VectorScaling().fit(logits, gold)
        elif method == "platt":
            calibrator = PlattCalibrator().fit(_features(probs), correct_before)
        else:
            calibrator = IsotonicCalibrator().fit(probs.max(axis=1), correct_before)
    except ValueError as exc:
        raise InvalidInputError(f"cannot fit the {method} calibrator: {exc}") from None
    pred, conf = _calibrated(method, calibrator, logits)
    correct = pred == gold

    try:
        if target_accuracy is not None:
            policy = GuaranteedAccuracyPolicy(target_accuracy, delta=delta)
            pred_labels = [labels[i] for i in pred]
            threshold = (policy.fit_per_class(conf, correct, pred_labels, min_per_class=min_per_class)
                         if per_class else policy.fit(conf, correct))
            described = f"guaranteed accuracy {target_accuracy:g} of kept answers, delta {delta:g}"
        elif target_escalation_rate is not None:
            threshold = EscalationRatePolicy(target_escalation_rate).fit(conf)
            described = f"escalation rate {target_escalation_rate:g}"
        else:
            threshold = BudgetPolicy(max_escalation_share).fit(conf)
            described = f"budget: escalate at most {max_escalation_share:g} of items"
    except ValueError as exc:
        raise InvalidInputError(f"cannot fit the threshold policy: {exc}") from None
    default = threshold.default if isinstance(threshold, ClassThresholds) else threshold
    described += f"{' per predicted label' if per_class else ''}; {default.reason}"

    raw_conf, raw_correct = _raw(z, gold)
    metrics: dict[str, float | int | None] = {"n": int(z.shape[0])}
    metrics |= _quality(raw_conf, raw_correct, "_raw") | _quality(conf, correct, "")
    return CalibrationArtifact(
        created_at=datetime.now(timezone.utc), task=task, labels=labels, labels_id=labels_id(labels),
        model_file_hash=model_file_hash, prompt_version=prompt_version, method=method,
        debias_prior=None if prior is None else [float(v) for v in prior], calibrator=calibrator.to_dict(),
        threshold=threshold.to_dict(), per_class=per_class, policy=described, fit_metrics=metrics,
        source=dict(source or {}),
    )


# -- evaluation on a disjoint split -------------------------------------------------------------

class EvaluationReport(BaseModel):
    """How an artifact does on items it was not fitted on. `*_raw` figures are the uncalibrated
    top label probability (softmax of the raw log-probs), the rest the artifact's confidence."""

    n: int
    accuracy_raw: float
    accuracy: float
    ece_raw: float
    ece: float
    brier_raw: float
    brier: float
    auroc_raw: float | None
    auroc: float | None
    aurc_raw: float
    aurc: float
    kept: int
    coverage: float
    kept_accuracy: float | None
    target_accuracy: float | None
    guarantee_held: bool | None  # kept accuracy >= target on this split (None: no accuracy target)
    plots: list[str] = []


def evaluate_artifact(artifact: CalibrationArtifact, logprobs, gold_index,
                      report_dir: str | Path | None = None, title: str = "") -> EvaluationReport:
    """Measure `artifact` on labelled log-probs [n, k] from a split disjoint from its fit split;
    with `report_dir`, write reliability diagrams (raw and calibrated) and a risk-coverage plot."""
    z = _check_logprobs(logprobs, artifact.labels)
    gold = _check_gold(gold_index, z.shape[0], artifact.labels)
    pred, conf = calibrated_predictions(artifact, z)
    correct = pred == gold
    raw_conf, raw_correct = _raw(z, gold)
    t = artifact.thresholds()
    kept_mask = (t.accept(conf, [artifact.labels[i] for i in pred]) if isinstance(t, ClassThresholds)
                 else t.accept(conf))
    kept_mask = np.asarray(kept_mask, dtype=bool).reshape(-1)
    kept = int(kept_mask.sum())
    kept_accuracy = float(correct[kept_mask].mean()) if kept else None
    default = t.default if isinstance(t, ClassThresholds) else t
    target = default.target if default.policy == GuaranteedAccuracyPolicy.name else None
    held = None if target is None else (kept == 0 or kept_accuracy >= target)
    figures = {k: v for k, v in (_quality(raw_conf, raw_correct, "_raw") | _quality(conf, correct, "")).items()}
    plots: list[str] = []
    if report_dir is not None:
        from routers.plots import plot_reliability, plot_risk_coverage

        out = Path(report_dir)
        name = title or artifact.task
        plots.append(str(plot_reliability(raw_conf, raw_correct, out / "reliability-raw.png",
                                          title=f"{name}: raw top probability")))
        plots.append(str(plot_reliability(conf, correct, out / "reliability-calibrated.png",
                                          title=f"{name}: calibrated ({artifact.method})")))
        plots.append(str(plot_risk_coverage({"raw": (raw_conf, raw_correct), "calibrated": (conf, correct)},
                                            out / "risk-coverage.png", title=f"{name}: risk-coverage")))
    return EvaluationReport(n=int(z.shape[0]), kept=kept, coverage=kept / z.shape[0], kept_accuracy=kept_accuracy,
                            target_accuracy=target, guarantee_held=held, plots=plots, **figures)
