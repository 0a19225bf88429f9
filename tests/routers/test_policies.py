import json
import math

import numpy as np
import pytest

from routers.policies import (
    BudgetPolicy,
    ClassThresholds,
    EscalationRatePolicy,
    GuaranteedAccuracyPolicy,
    Threshold,
    accept,
    select_within_budget,
)


def _draw(rng, n):
    """conf ~ U(0, 1), correct ~ Bernoulli(conf): kept error above t is exactly (1 - t) / 2."""
    conf = rng.random(n)
    return conf, rng.random(n) < conf


def test_accept_is_greater_or_equal():
    assert accept(0.5, 0.5) is True
    assert accept(0.49, 0.5) is False
    assert list(accept(np.array([0.2, 0.8]), 0.5)) == [False, True]
    assert accept(1.0, math.inf) is False


def test_escalation_rate_policy_escalates_target_share():
    rng = np.random.default_rng(0)
    fitted = EscalationRatePolicy(0.2).fit(rng.random(10000))
    assert fitted.escalation_rate == pytest.approx(0.2, abs=0.005)
    fresh = rng.random(10000)
    assert np.mean(~accept(fresh, fitted)) == pytest.approx(0.2, abs=0.02)
    assert EscalationRatePolicy(1.0).fit(fresh).escalates_all
    assert EscalationRatePolicy(0.0).fit(fresh).escalation_rate == 0.0


def test_guaranteed_accuracy_holds_with_probability_one_minus_delta():
    rng = np.random.default_rng(1)
    target, delta, draws = 0.9, 0.1, 300
    policy = GuaranteedAccuracyPolicy(target_accuracy=target, delta=delta)
    true_violations = test_violations = escalated_all = 0
    coverages = []
    for _ in range(draws):
        fitted = policy.fit(*_draw(rng, 2000))
        escalated_all += fitted.escalates_all
        true_violations += (1 - fitted.value) / 2 > 1 - target  # exact; 0 when value is inf
        conf, correct = _draw(rng, 20000)
        kept = accept(conf, fitted)
        test_violations += kept.any() and np.mean(~correct[kept]) > 1 - target
        coverages.append(kept.mean())
    assert true_violations / draws <= delta + 0.05
    assert test_violations / draws <= delta + 0.05
    # Not vacuous: the best threshold (0.8) keeps 20%; most draws get a good share of it.
    assert escalated_all / draws < 0.2
    assert np.mean(coverages) > 0.1


def test_guaranteed_accuracy_escalates_everything_when_unreachable():
    rng = np.random.default_rng(2)
    fitted = GuaranteedAccuracyPolicy(target_accuracy=0.999, delta=0.05).fit(*_draw(rng, 200))
    assert fitted.escalates_all and fitted.value == math.inf
    assert fitted.escalation_rate == 1.0
    assert "escalate all" in fitted.reason
    d = json.loads(json.dumps(fitted.to_dict(), allow_nan=False))
    assert d["value"] is None
    assert Threshold.from_dict(d) == fitted
    assert not np.any(accept(np.ones(5), fitted))


def test_guaranteed_accuracy_hand_case():
    # All 30 answers above 0.5 are right. Zero errors in m items bound the error by
    # 1 - 0.05**(1/m): 0.113 for m=25 (fails), 0.098 for m=29, 0.095 for m=30 (pass).
    conf = np.r_[np.linspace(0.9, 0.6, 30), np.linspace(0.4, 0.1, 30)]
    correct = np.r_[np.ones(30, bool), np.zeros(30, bool)]
    policy = GuaranteedAccuracyPolicy(target_accuracy=0.9, delta=0.05, min_kept=29)
    fitted = policy.fit(conf, correct)
    assert fitted.value == pytest.approx(0.6)
    assert fitted.bound == pytest.approx(1 - 0.05 ** (1 / 30))
    assert fitted.kept_error == 0.0
    assert fitted.escalation_rate == pytest.approx(0.5)
    # Starting the walk too early, at 25 kept items, stops it at once.
    assert GuaranteedAccuracyPolicy(0.9, delta=0.05, min_kept=25).fit(conf, correct).escalates_all


def test_guaranteed_accuracy_refuses_too_few_labels():
    fitted = GuaranteedAccuracyPolicy(0.9, delta=0.1).fit([0.99] * 10, [True] * 10)
    assert fitted.escalates_all and fitted.bound is None
    assert "10 labelled items; 38 needed" in fitted.reason


def test_fit_per_class_with_fallback():
    rng = np.random.default_rng(3)
    conf_a, correct_a = _draw(rng, 2000)
    conf_b = rng.random(2000)
    correct_b = rng.random(2000) < conf_b**2  # label b is over-confident: needs a higher bar
    conf_c, correct_c = _draw(rng, 20)
    conf = np.r_[conf_a, conf_b, conf_c]
    correct = np.r_[correct_a, correct_b, correct_c]
    labels = ["a"] * 2000 + ["b"] * 2000 + ["c"] * 20
    ct = GuaranteedAccuracyPolicy(0.9, delta=0.1).fit_per_class(conf, correct, labels)
    assert set(ct.per_label) == {"a", "b", "c"}
    assert ct.threshold_for("b").value > ct.threshold_for("a").value
    c = ct.threshold_for("c")
    assert c.fallback and c.value == ct.default.value and "only 20 items" in c.reason
    assert not ct.threshold_for("a").fallback
    assert ct.threshold_for("never-seen") == ct.default
    assert ClassThresholds.from_dict(json.loads(json.dumps(ct.to_dict()))) == ct


def test_class_thresholds_accept_per_label():
    strict = Threshold(0.9, "guaranteed_accuracy", target=0.99, n=500, escalation_rate=0.4)
    loose = Threshold(0.6, "guaranteed_accuracy", target=0.9, n=500, escalation_rate=0.1)
    ct = ClassThresholds(default=loose, per_label={"legit": strict})
    assert ct.accept(0.8, "fraud") is True
    assert ct.accept(0.8, "legit") is False
    kept = ct.accept(np.array([0.8, 0.8, 0.95]), ["fraud", "legit", "legit"])
    assert list(kept) == [True, False, True]


def test_budget_policy_never_exceeds_share():
    rng = np.random.default_rng(4)
    for share in (0.0, 0.1, 0.25, 0.5, 1.0):
        conf = np.round(rng.random(101), 1)  # many ties
        fitted = BudgetPolicy(share).fit(conf)
        escalated = int(np.sum(~accept(conf, fitted)))
        assert escalated <= math.floor(share * 101)
        assert fitted.escalation_rate == pytest.approx(escalated / 101)
    assert BudgetPolicy(1.0).fit(conf).escalates_all


def test_select_within_budget_least_confident_first():
    conf = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    assert list(select_within_budget(conf, max_share=0.5)) == [1, 5, 3]
    costs = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 1.0])
    # 0.1 (cost 2) + 0.2 (cost 1) = 3; adding 0.3 (cost 2) would exceed 4.
    assert list(select_within_budget(conf, costs=costs, max_spend=4.0)) == [1, 5]
    assert list(select_within_budget(conf, max_share=1.0, threshold=0.4)) == [1, 5, 3]
    # 0.1 + 0.2 is 0.30000000000000004 in floats: still within a 0.3 cap.
    chosen = select_within_budget([0.1, 0.2, 0.3], costs=[0.1, 0.2, 5.0], max_spend=0.3)
    assert list(chosen) == [0, 1]


def test_select_within_budget_random_caps_hold():
    rng = np.random.default_rng(5)
    for _ in range(50):
        conf, costs = rng.random(40), rng.random(40)
        share, spend = rng.random(), rng.random() * 10
        chosen = select_within_budget(conf, max_share=share, costs=costs, max_spend=spend)
        assert len(chosen) <= math.floor(share * 40 + 1e-9)
        assert costs[chosen].sum() <= spend + 1e-9
        rest = np.setdiff1d(np.arange(40), chosen)
        if len(chosen) and len(rest):
            assert conf[chosen].max() <= conf[rest].min()


def test_select_within_budget_needs_a_cap():
    with pytest.raises(ValueError, match="max_share"):
        select_within_budget([0.1, 0.2])
    with pytest.raises(ValueError, match="needs costs"):
        select_within_budget([0.1, 0.2], max_spend=1.0)
