"""Temperature scaling, the sensitivity operating point and the coverage curve, on data whose answer
is known."""

import numpy as np
import pytest

from dermedge.commands.calibration import (
    confidence_threshold,
    fit_temperature,
    threshold_for_sensitivity,
)
from dermedge.metrics import coverage_curve, expected_calibration_error
from edge_runtime.calibration import apply_temperature


def _overconfident(n=3000, temperature=2.5, seed=0):
    """Labels drawn from softmax(logits / T), reported as softmax(logits): overconfident by T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 7))
    true_p = np.exp(logits / temperature)
    true_p /= true_p.sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in true_p])
    reported = np.exp(logits)
    return reported / reported.sum(1, keepdims=True), labels


@pytest.mark.runtime
def test_apply_temperature_keeps_order_and_sums_to_one():
    p = np.array([[0.7, 0.2, 0.1, 0.0]], np.float32)  # an exact zero, as int8 outputs have
    for t in (0.5, 1.0, 3.0):
        q = apply_temperature(p, t)
        assert q.sum() == pytest.approx(1, abs=1e-6) and list(np.argsort(q[0])) == list(np.argsort(p[0]))
    assert apply_temperature(p, 3.0)[0, 0] < 0.7 < apply_temperature(p, 0.5)[0, 0]
    np.testing.assert_allclose(apply_temperature(p, 1.0), p)


def test_fit_temperature_recovers_the_true_one_and_lowers_ece():
    pytest.importorskip("scipy")  # the fit's optimiser; the runtime only applies the temperature
    probs, labels = _overconfident(temperature=2.5)
    t = fit_temperature(probs, labels)
    assert t == pytest.approx(2.5, rel=0.12)
    before = expected_calibration_error(probs, labels)
    after = expected_calibration_error(apply_temperature(probs, t), labels)
    assert after < before / 2 and after < 0.05


@pytest.mark.runtime
def test_threshold_for_sensitivity_is_the_most_specific_that_reaches_it():
    truth = np.array([1, 1, 1, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.3, 0.1, 0.5, 0.05])
    assert threshold_for_sensitivity(truth, score, 0.75) == 0.3  # 3 of 4 positives at >= 0.3
    assert threshold_for_sensitivity(truth, score, 1.0) == 0.1
    for target in (0.5, 0.9):
        t = threshold_for_sensitivity(truth, score, target)
        assert (score[truth == 1] >= t).mean() >= target
    with pytest.raises(ValueError):
        threshold_for_sensitivity(np.zeros(3), np.ones(3), 0.9)


@pytest.mark.runtime
def test_coverage_curve_and_confidence_threshold():
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0], bool)
    curve = coverage_curve(confidence, correct, points=20)
    assert curve[0] == {"coverage": 1.0, "accuracy": 0.5, "min_confidence": 0.05}
    half = next(c for c in curve if c["coverage"] == 0.5)
    assert half["accuracy"] == 0.8 and half["min_confidence"] == 0.5
    assert curve[-1]["accuracy"] == 1.0
    threshold = confidence_threshold(confidence, 0.8)
    assert (confidence >= threshold).mean() == pytest.approx(0.8, abs=0.1)
    assert confidence_threshold(confidence, 1.0) == 0.0
