"""Routers decide: signals from a model's own output, calibrators, threshold policies, metrics.

Imports only `agents`' result types. Plots live in `routers.plots` (it loads matplotlib).
"""

from .calibrators import IsotonicCalibrator, PlattCalibrator, TemperatureScaling, VectorScaling, load_calibrator
from .decision import decide
from .metrics import (
    area_under_risk_coverage,
    auroc,
    brier_score,
    expected_calibration_error,
    reliability_table,
    risk_coverage_curve,
)
from .policies import (
    BudgetPolicy,
    ClassThresholds,
    EscalationRatePolicy,
    GuaranteedAccuracyPolicy,
    Threshold,
    accept,
    select_within_budget,
)
from .signals import batch_prior, debias, label_signals, signal_matrix, span_signals

__all__ = [
    "BudgetPolicy", "ClassThresholds", "EscalationRatePolicy", "GuaranteedAccuracyPolicy", "IsotonicCalibrator",
    "PlattCalibrator", "TemperatureScaling", "Threshold", "VectorScaling", "accept", "area_under_risk_coverage", "auroc",
    "batch_prior", "brier_score", "debias", "decide", "expected_calibration_error", "label_signals",
    "load_calibrator", "reliability_table", "risk_coverage_curve", "select_within_budget", "signal_matrix",
    "span_signals",
]
