"""`dermedge evaluate`: the deployed pipeline (bundle + edge runtime) scored on labelled data.

Classification runs the whole two-stage path (U-Net mask -> crop -> classifier), so the figures
are what a device would achieve, not what the classifier does on ground-truth crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from dermedge.commands.batch import Skipped, progress_bar, run_pipeline
from dermedge.datasets import images_by_stem, masks_by_image_id, read_label_table, read_mask
from dermedge.errors import DermedgeError
from dermedge.metrics import coverage_curve, require_eval_extra
from edge_runtime.image_io import ImageError, read_image
from edge_runtime.pipeline import Pipeline


def _locate(ids: list[str], files: dict[str, Path], images: Path, skipped: Skipped) -> list[tuple[str, Path]]:
    """(id, file) for every id with an image in `files` (from `images_by_stem(images)`)."""
    located = []
    for image_id in ids:
        if image_id in files:
            located.append((image_id, files[image_id]))
        else:
            skipped.add(image_id, f"no image file for it in {images}")
    return located


def evaluate_classification(pipeline: Pipeline, images: Path, labels: Path, split: str | None,
                            console: Console, plots: Path | None = None) -> dict:
    require_eval_extra()
    from dermedge.metrics import classification_metrics

    table = read_label_table(labels, split)
    classes = pipeline.labels
    if not table.binary:
        unknown = sorted(set(table.targets) - set(classes))
        if unknown:
            raise DermedgeError(f"{Path(labels).name}: label(s) {', '.join(unknown)} are not in the bundle's "
                                f"labels ({', '.join(classes)})")
    skipped = Skipped()
    located = _locate(table.ids, images_by_stem(Path(images)), Path(images), skipped)
    target_by_id = dict(zip(table.ids, table.targets))
    target_of = {path: target_by_id[image_id] for image_id, path in located}
    probs, raw, targets, reasons, lesions = [], [], [], [], 0
    for path, _, result in run_pipeline(pipeline, list(target_of), skipped, console, "evaluating"):
        probs.append([result.probabilities[c] for c in classes])
        raw.append([result.raw_probabilities[c] for c in classes])
        targets.append(target_of[path])
        reasons.append(result.inconclusive_reason)
        lesions += result.lesion_found
    if not probs:
        raise DermedgeError("no image could be evaluated: " + "; ".join(r for _, r in skipped.files[:3]))
    probs = np.asarray(probs, np.float32)
    base = {"bundle": str(pipeline.bundle.root), "variant": pipeline.variant, "label_form": table.form}
    if table.binary:
        metrics = _binary_metrics(np.asarray(targets, bool), probs, classes, pipeline, table.binary_column)
    else:
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[t] for t in targets])
        metrics = classification_metrics(y, probs, classes, frozenset(pipeline.malignant_labels),
                                         pipeline.malignant_threshold)
        metrics["malignant_threshold"] = pipeline.malignant_threshold
        metrics.update(trust_metrics(y, probs, np.asarray(raw, np.float32), reasons, pipeline))
        if plots:
            _classification_plots(metrics, y, probs, classes, pipeline, Path(plots))
    metrics["lesion_found_fraction"] = lesions / len(probs)
    metrics["skipped"] = skipped.as_list()
    return {**base, **metrics}


def trust_metrics(y: np.ndarray, probs: np.ndarray, raw: np.ndarray, reasons: list[str | None],
                  pipeline: Pipeline) -> dict:
    """Calibration (ECE of the model's own and of the calibrated probabilities), the inconclusive
    answers by reason with the accuracy of the rest, and the coverage-accuracy curve."""
    from dermedge.metrics import balanced_accuracy, expected_calibration_error

    conclusive = np.array([r is None for r in reasons])
    by_reason: dict[str, int] = {}
    for reason in reasons:
        if reason is not None:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    correct = probs.argmax(1) == y
    kept = {"n": int(conclusive.sum()), "accuracy": float(correct[conclusive].mean()) if conclusive.any() else None,
            "balanced_accuracy": balanced_accuracy(y[conclusive], probs[conclusive].argmax(1))
            if conclusive.any() else None}
    return {
        "calibration": {"temperature": pipeline.temperature, "ece_uncalibrated": expected_calibration_error(raw, y),
                        "ece_calibrated": expected_calibration_error(probs, y)},
        "inconclusive": {"rate": float(1 - conclusive.mean()), "by_reason": by_reason,
                         "min_confidence": pipeline.min_confidence, "conclusive": kept},
        "coverage_curve": coverage_curve(probs.max(1), correct),
    }


def _binary_metrics(truth: np.ndarray, probs: np.ndarray, classes, pipeline: Pipeline, column: str) -> dict:
    from dermedge.metrics import binary_operating_point

    malignant_idx = [classes.index(c) for c in pipeline.malignant_labels]
    if column == "melanoma":
        mel = classes.index("mel")
        score, decision = probs[:, mel], probs.argmax(1) == mel
    else:
        score = probs[:, malignant_idx].sum(1)
        decision = score >= pipeline.malignant_threshold
    return {"n": int(len(truth)), "target": column, **binary_operating_point(truth, decision, score)}


def _classification_plots(metrics: dict, y, probs, classes, pipeline: Pipeline, out: Path) -> None:
    from dermedge.reports import plot_confusion, plot_coverage, plot_reliability, plot_roc

    out.mkdir(parents=True, exist_ok=True)
    name = f"{pipeline.variant} pipeline"
    plot_confusion(metrics["confusion_matrix"], classes, out / "confusion.png",
                   f"{name}: balanced accuracy {metrics['balanced_accuracy']:.3f}")
    plot_roc(y, probs, classes, out / "roc.png", f"{name}: macro AUC {metrics['macro_auc']:.3f}",
             frozenset(pipeline.malignant_labels))
    plot_reliability(y, probs, out / "reliability.png", f"{name}: ECE {metrics['ece']:.3f}")
    plot_coverage(metrics["coverage_curve"], out / "coverage.png",
                  f"{name}: accuracy of the answers kept", pipeline.min_confidence)


def evaluate_segmentation(pipeline: Pipeline, images: Path, masks: Path, labels: Path | None,
                          split: str | None, console: Console, plots: Path | None = None) -> dict:
    """Dice/IoU of the deployed mask (segmenter + post-processing) against the true masks."""
    from dermedge.metrics import segmentation_metrics

    skipped = Skipped()
    files = images_by_stem(Path(images))
    ids = read_label_table(labels, split).ids if labels else sorted(files)
    located = _locate(ids, files, Path(images), skipped)
    mask_files = masks_by_image_id(Path(masks))

    def pairs():
        with progress_bar(console) as progress:
            task = progress.add_task("segmenting", total=len(located))
            for image_id, path in located:
                progress.advance(task)
                if image_id not in mask_files:
                    skipped.add(path, "no mask for this image")
                    continue
                truth = read_mask(mask_files[image_id])
                if truth is None:
                    skipped.add(mask_files[image_id], "unreadable mask")
                    continue
                try:
                    image = read_image(path, pipeline.max_pixels)
                except ImageError as exc:
                    skipped.add(path, str(exc))
                    continue
                if truth.shape != image.shape[:2]:
                    skipped.add(path, f"mask is {truth.shape[1]}x{truth.shape[0]}, image "
                                      f"{image.shape[1]}x{image.shape[0]}")
                    continue
                yield pipeline.lesion_mask(pipeline.segment(image), image.shape[:2]), truth

    metrics = segmentation_metrics(pairs())
    if not metrics["n"]:
        raise DermedgeError("no image could be evaluated: " + "; ".join(r for _, r in skipped.files[:3]))
    per_image = metrics.pop("dice_per_image")
    if plots:
        from dermedge.reports import plot_dice_histogram

        Path(plots).mkdir(parents=True, exist_ok=True)
        plot_dice_histogram(per_image, Path(plots) / "dice_histogram.png",
                            f"{pipeline.variant} pipeline: mean Dice {metrics['dice']:.3f}")
    return {"bundle": str(pipeline.bundle.root), "variant": pipeline.variant, **metrics,
            "skipped": skipped.as_list()}
