import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from dermedge.metrics import (
    balanced_accuracy,
    bootstrap_balanced_accuracy,
    classification_metrics,
    dice,
    expected_calibration_error,
    iou,
    paired_difference_interval,
    segmentation_metrics,
)

HAM10000 = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


@pytest.mark.runtime
def test_dice_and_iou_of_known_masks():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True  # 50 px
    b[:, 3:8] = True  # 50 px, 20 overlap
    assert dice(a, b) == pytest.approx(0.4)
    assert iou(a, b) == pytest.approx(20 / 80)
    assert dice(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


@pytest.mark.runtime
def test_thresholded_jaccard_zeroes_poor_images():
    good = np.ones((4, 4), bool)
    poor = np.zeros((4, 4), bool)
    poor[0, 0] = True
    m = segmentation_metrics([(good, good), (poor, good)])
    assert m["iou"] == pytest.approx((1 + 1 / 16) / 2)
    assert m["thresholded_jaccard"] == pytest.approx(0.5)


def test_classification_metrics_match_definitions():
    pytest.importorskip("sklearn")
    classes = HAM10000
    labels = np.array([4, 4, 5, 5, 5, 0])
    probs = np.full((6, 7), 0.01)
    for i, p in enumerate([4, 5, 5, 5, 4, 1]):
        probs[i, p] = 0.94
    m = classification_metrics(labels, probs, classes, frozenset({"mel", "bcc", "akiec"}))
    assert m["accuracy"] == pytest.approx(3 / 6)
    # recall: mel 1/2, nv 2/3, akiec 0
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert m["melanoma"]["sensitivity"] == pytest.approx(0.5)
    assert m["melanoma"]["specificity"] == pytest.approx(3 / 4)
    # malignant: truth [1,1,0,0,0,1], predicted malignant [1,0,0,0,1,1]
    assert m["malignant"]["sensitivity"] == pytest.approx(2 / 3)
    assert m["malignant"]["specificity"] == pytest.approx(2 / 3)
    assert m["per_class"]["nv"]["support"] == 3


@pytest.mark.runtime
def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    labels = np.array([4, 4, 5, 5, 5, 0])
    predicted = np.array([4, 6, 5, 5, 1, 1])  # 6 and 1 are classes the data set does not have
    assert balanced_accuracy(labels, predicted) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert balanced_accuracy(labels, labels) == 1.0
    assert np.isnan(balanced_accuracy(np.array([], int), np.array([], int)))


def _two_class_data_set():
    """mel and nv images only, scored by a seven-class model that also answers bcc, akiec and vasc."""
    rng = np.random.default_rng(0)
    labels = rng.choice([4, 5], 40)
    predicted = np.where(rng.random(40) < 0.6, labels, rng.choice([0, 1, 6], 40))
    probs = np.full((40, 7), 0.02)
    probs[np.arange(40), predicted] = 0.88
    return labels, probs


def test_metrics_of_a_data_set_with_fewer_classes_than_the_model_do_not_warn():
    """`dermedge evaluate` on a two-class data set printed scikit-learn's "y_pred contains classes
    not in y_true": the metrics must not warn the user about their own inputs."""
    balanced_accuracy_score = pytest.importorskip("sklearn.metrics").balanced_accuracy_score

    labels, probs = _two_class_data_set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(labels, probs, HAM10000, frozenset({"mel", "bcc", "akiec"}))
    with warnings.catch_warnings():  # the reference does warn here: that is the point
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(labels, probs.argmax(1))
    assert m["balanced_accuracy"] == pytest.approx(expected)
    assert m["per_class"]["bcc"]["support"] == 0 and np.isnan(m["per_class"]["bcc"]["auc"])


@pytest.mark.runtime
def test_trust_metrics_of_a_data_set_with_fewer_classes_than_the_model_do_not_warn():
    from dermedge.commands.evaluate import trust_metrics

    labels, probs = _two_class_data_set()
    pipeline = SimpleNamespace(temperature=1.0, min_confidence=0.0)
    reasons = [None] * (len(labels) - 5) + ["uncertain"] * 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = trust_metrics(labels, probs, probs, reasons, pipeline)
    kept = found["inconclusive"]["conclusive"]
    assert kept["n"] == len(labels) - 5
    assert kept["balanced_accuracy"] == pytest.approx(balanced_accuracy(labels[:-5], probs[:-5].argmax(1)))


@pytest.mark.runtime
def test_ece_is_zero_for_perfectly_calibrated_and_large_for_overconfident():
    labels = np.array([0, 1] * 50)
    sure_and_right = np.eye(2)[labels]
    assert expected_calibration_error(sure_and_right, labels) == pytest.approx(0.0)
    sure_and_wrong = np.eye(2)[1 - labels]
    assert expected_calibration_error(sure_and_wrong, labels) == pytest.approx(1.0)


def _noisy_predictions(labels: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(labels)) < accuracy, labels, rng.integers(0, 7, len(labels)))


def test_bootstrap_balanced_accuracy_matches_sklearn_and_brackets_the_estimate():
    balanced_accuracy_score = pytest.importorskip("sklearn.metrics").balanced_accuracy_score

    labels = np.random.default_rng(0).integers(0, 7, 600)
    predicted = _noisy_predictions(labels, 0.6, seed=1)
    scores = bootstrap_balanced_accuracy(labels, [predicted, labels], 7, resamples=400)
    assert scores.shape == (400, 2) and np.all(scores[:, 1] == 1.0)  # perfect stays perfect
    estimate = balanced_accuracy_score(labels, predicted)
    assert balanced_accuracy(labels, predicted) == pytest.approx(estimate)
    low, high = classification_metrics(labels, np.eye(7)[predicted], tuple("abcdefg"))["balanced_accuracy_ci95"]
    assert low < estimate < high and 0.02 < high - low < 0.15


@pytest.mark.runtime
def test_paired_interval_separates_a_real_difference_from_none():
    labels = np.random.default_rng(0).integers(0, 7, 1500)
    weak, strong = _noisy_predictions(labels, 0.5, seed=1), _noisy_predictions(labels, 0.8, seed=2)
    assert paired_difference_interval(labels, weak, weak, 7) == [0.0, 0.0]
    low, high = paired_difference_interval(labels, strong, weak, 7)
    assert 0 < low < high  # the stronger model is better on every plausible sample
