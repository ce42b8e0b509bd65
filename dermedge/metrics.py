"""Task metrics, defined once for training reports, export checks, evaluate and benchmarks."""

from __future__ import annotations

import numpy as np

from dermedge.errors import missing_extra

ISIC_JACCARD_FLOOR = 0.65  # ISIC 2018 Task 1: a per-image Jaccard under this counts as 0
BOOTSTRAP_RESAMPLES = 2000  # resamples of the images behind every 95% interval; stable to ~0.002


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; two empty masks agree perfectly."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, truth).sum() / total)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    pred, truth = pred.astype(bool), truth.astype(bool)
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def segmentation_metrics(pairs) -> dict:
    """Per-image means over (predicted, true) boolean mask pairs."""
    dices, ious = [], []
    for pred, truth in pairs:
        dices.append(dice(pred, truth))
        ious.append(iou(pred, truth))
    return {"n": len(dices), **mask_summary(np.asarray(dices), np.asarray(ious)),
            "dice_per_image": [round(d, 5) for d in dices]}


def mask_summary(dices: np.ndarray, ious: np.ndarray) -> dict:
    """The segmenter's figures from per-image Dice and IoU: mean Dice, worst-decile mean Dice,
    10th-percentile Dice, mean IoU and the ISIC thresholded Jaccard (NaN for no images)."""
    if not len(dices):
        return dict.fromkeys(("dice", "dice_worst_decile", "dice_p10", "iou", "thresholded_jaccard"),
                             float("nan"))
    worst = np.sort(dices)[: max(len(dices) // 10, 1)]
    return {
        "dice": float(np.mean(dices)),
        # The worst-decile mean: a crop is only as good as the mask of the image at hand, so the
        # bad tail matters more than the mean.
        "dice_worst_decile": float(np.mean(worst)),
        "dice_p10": float(np.percentile(dices, 10)),
        "iou": float(np.mean(ious)),
        "thresholded_jaccard": float(np.where(ious < ISIC_JACCARD_FLOOR, 0.0, ious).mean()),
    }


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence in equal-width bins (Guo et al. 2017)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in `labels` (scikit-learn's `balanced_accuracy_score`).

    Computed here rather than by scikit-learn, which warns "y_pred contains classes not in y_true"
    whenever the model predicts a class the data set lacks (any data set with fewer classes than
    the model): a fact about the data the user chose, not something to warn them about.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if labels.size == 0:
        return float("nan")
    present = np.unique(labels)
    return float(np.mean([(predicted[labels == c] == c).mean() for c in present]))


def binary_operating_point(truth: np.ndarray, decision: np.ndarray, score: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    positives, negatives = truth.sum(), (~truth).sum()
    return {
        "auc": float(roc_auc_score(truth, score)) if positives and negatives else float("nan"),
        "sensitivity": float((decision & truth).sum() / positives) if positives else float("nan"),
        "specificity": float((~decision & ~truth).sum() / negatives) if negatives else float("nan"),
    }


def bootstrap_picks(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Image indices of each bootstrap resample, shape (resamples, n): one draw that every figure of
    a paired comparison reuses, so their intervals come from the same resampled images."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_balanced_accuracy(labels: np.ndarray, predictions: list[np.ndarray], num_classes: int,
                                resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Balanced accuracy of each prediction vector on bootstrap resamples of the images,
    shape (resamples, len(predictions)).

    Why: with 20-odd test images in the rarest classes, balanced accuracy moves by several points
    from one sample of images to the next. Every vector is scored on the same resamples, so the
    difference of two columns is a paired comparison (much tighter than the two intervals).
    """
    labels = np.asarray(labels)
    picks = bootstrap_picks(len(labels), resamples, seed)
    truth = labels[picks]
    of_class = truth[:, :, None] == np.arange(num_classes)  # (resamples, images, classes)
    support = of_class.sum(axis=1)
    scores = np.empty((resamples, len(predictions)))
    for j, predicted in enumerate(predictions):
        hit = np.asarray(predicted)[picks] == truth
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, (hit[:, :, None] & of_class).sum(axis=1) / support, np.nan)
        scores[:, j] = np.nanmean(recall, axis=1)
    return scores


def interval95(samples: np.ndarray) -> list[float]:
    """The central 95% of bootstrap samples (percentile interval)."""
    low, high = np.percentile(samples, [2.5, 97.5])
    return [float(low), float(high)]


def format_points(interval: list[float]) -> str:
    """An interval of a difference in balanced accuracy, in points: "[-2.1, +0.4]"."""
    return f"[{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"


def paired_difference_interval(labels: np.ndarray, predicted: np.ndarray, baseline: np.ndarray,
                               num_classes: int) -> list[float]:
    """95% interval of balanced accuracy(predicted) - balanced accuracy(baseline) on the same
    images: does a quantized model really lose accuracy, or is it the luck of the sample?"""
    scores = bootstrap_balanced_accuracy(labels, [predicted, baseline], num_classes)
    return interval95(scores[:, 0] - scores[:, 1])


def classification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: tuple[str, ...],
    malignant: frozenset[str] = frozenset(),
    malignant_threshold: float | None = None,
) -> dict:
    """Accuracy, balanced accuracy, macro AUC, per-class figures, melanoma and malignant views.

    The decision is the arg-max class; with `malignant_threshold` the malignant decision is the
    summed malignant probability at that threshold instead.
    """
    from sklearn.metrics import (
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    present = np.unique(labels)
    k = len(classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(k)), zero_division=0
    )
    aucs = {}
    for i, name in enumerate(classes):
        positive = labels == i
        aucs[name] = (
            float(roc_auc_score(positive, probabilities[:, i]))
            if positive.any() and (~positive).any()
            else float("nan")
        )
    present_aucs = [aucs[classes[i]] for i in present if not np.isnan(aucs[classes[i]])]
    result = {
        "n": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": balanced_accuracy(labels, predicted),
        "balanced_accuracy_ci95": interval95(bootstrap_balanced_accuracy(labels, [predicted], k)[:, 0]),
        "macro_auc": float(np.mean(present_aucs)) if present_aucs else float("nan"),
        "ece": expected_calibration_error(probabilities, labels),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "auc": aucs[name],
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=list(range(k))).tolist(),
    }
    if "mel" in classes:
        mel = classes.index("mel")
        result["melanoma"] = binary_operating_point(
            labels == mel, predicted == mel, probabilities[:, mel]
        )
    malignant_idx = [i for i, c in enumerate(classes) if c in malignant]
    if malignant_idx:
        truth = np.isin(labels, malignant_idx)
        score = probabilities[:, malignant_idx].sum(axis=1)
        decision = (
            score >= malignant_threshold
            if malignant_threshold is not None
            else np.isin(predicted, malignant_idx)
        )
        result["malignant"] = binary_operating_point(truth, decision, score)
    return result


def coverage_curve(confidence: np.ndarray, correct: np.ndarray, points: int = 21) -> list[dict]:
    """Accuracy of the answers kept when the least confident are withheld, at coverages 100%..0%:
    the trade-off a user picks `min_confidence` from."""
    order = np.argsort(-np.asarray(confidence), kind="stable")
    correct = np.asarray(correct, bool)[order]
    kept_accuracy = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    curve = []
    for coverage in np.linspace(1.0, 0.05, points):
        n = max(int(round(coverage * len(correct))), 1)
        curve.append({"coverage": round(n / len(correct), 4), "accuracy": round(float(kept_accuracy[n - 1]), 4),
                      "min_confidence": round(float(np.asarray(confidence)[order][n - 1]), 4)})
    return curve


def require_eval_extra() -> None:
    """scikit-learn (and the scipy it brings) come with the [eval] extra: a one-line hint without it."""
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise missing_extra("eval", "scikit-learn") from exc
