"""Every export is checked against its Keras original on held-out images: agreement with the
float model and the task metrics themselves, so "what did quantization cost" has a number."""

from __future__ import annotations

import numpy as np

from dermedge.metrics import classification_metrics, dice, paired_difference_interval, segmentation_metrics
from edge_runtime.labels import MALIGNANT_CLASSES
from edge_runtime.postprocess import clean_mask


def classifier_figures(reference: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                       classes: tuple[str, ...]) -> dict:
    """Top-1 agreement and max probability difference against Keras, plus task metrics."""
    task = classification_metrics(labels, probs, classes, MALIGNANT_CLASSES)
    return {
        "n": int(len(probs)),
        "top1_agreement": float((reference.argmax(1) == probs.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(reference - probs).max()),
        "accuracy": task["accuracy"],
        "balanced_accuracy": task["balanced_accuracy"],
        "balanced_accuracy_vs_float_ci95": paired_difference_interval(
            labels, probs.argmax(1), reference.argmax(1), len(classes)),
        "macro_auc": task["macro_auc"],
        "melanoma_sensitivity": task["melanoma"]["sensitivity"] if "melanoma" in task else None,
    }


def segmenter_figures(reference: np.ndarray, probs: np.ndarray, truths: list[np.ndarray],
                      threshold: float = 0.5) -> dict:
    """Mask Dice against the Keras mask (model resolution), and Dice/IoU against the true masks of
    the mask the device makes (`clean_mask`), at each image's own resolution."""
    agreement = [dice(r > threshold, p > threshold) for r, p in zip(reference, probs)]

    def pairs():
        for prob, truth in zip(probs, truths):
            yield clean_mask(prob, truth.shape, threshold), truth

    task = segmentation_metrics(pairs())
    return {"n": int(len(probs)), "mask_dice_vs_float": float(np.mean(agreement)),
            "mean_prob_diff": float(np.abs(reference - probs).mean()),
            "min_mask_dice_vs_float": float(np.min(agreement)),
            "dice": task["dice"], "iou": task["iou"], "thresholded_jaccard": task["thresholded_jaccard"]}
