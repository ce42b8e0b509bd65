"""Fitting what makes the pipeline's output trustworthy, on the validation split, per variant:
a temperature (calibration), the malignant threshold for a target sensitivity (operating point),
and the confidence below which an answer is "inconclusive" (selective prediction).

Applied by the runtime (`edge_runtime.calibration`, the manifest's `calibration` entry of a
variant); measured on the test split, never on the data they were fitted on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from dermedge.errors import DermedgeError
from edge_runtime.calibration import PROBABILITY_FLOOR, apply_temperature

TEMPERATURE_BOUNDS = (0.05, 20.0)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, PROBABILITY_FLOOR, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of `labels` (searched on log T, bounded)."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)
    lo, hi = np.log(TEMPERATURE_BOUNDS)
    found = minimize_scalar(lambda log_t: negative_log_likelihood(apply_temperature(probabilities, float(np.exp(log_t))),
                                                                   labels),
                            bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def threshold_for_sensitivity(truth: np.ndarray, score: np.ndarray, sensitivity: float) -> float:
    """The highest threshold whose sensitivity (score >= threshold among positives) reaches the
    target: the most specific operating point that still finds that share of malignant lesions."""
    positives = np.sort(np.asarray(score)[np.asarray(truth, bool)])[::-1]
    if positives.size == 0:
        raise ValueError("no positive case to fit a sensitivity threshold on")
    needed = int(np.ceil(sensitivity * positives.size))
    return float(positives[max(needed, 1) - 1])


def confidence_threshold(confidence: np.ndarray, coverage: float) -> float:
    """The confidence below which answers are withheld so that `coverage` of cases get one."""
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    if coverage == 1:
        return 0.0
    return float(np.quantile(np.asarray(confidence), 1 - coverage))


def calibrate_bundle(bundle_dir: Path, images: Path, labels: Path, split: str = "val", sensitivity: float = 0.90,
                     coverage: float = 0.95, variants: list[str] | None = None, threads: int | None = None,
                     console: Console | None = None) -> dict:
    """Fit temperature, malignant threshold and `min_confidence` for each TFLite variant of a bundle
    folder on labelled held-out images, and write them into its manifest (`variants.<v>.calibration`).

    Each variant is fitted on its own outputs through the deployed path (U-Net crop): int8 and
    float models are not equally confident."""
    from dermedge.commands.batch import Skipped, progress_bar
    from dermedge.datasets import images_by_stem
    from dermedge.datasets import read_label_table
    from dermedge.metrics import require_eval_extra
    from dermedge.metrics import binary_operating_point, expected_calibration_error
    from edge_runtime.bundle import load_bundle, write_manifest
    from edge_runtime.image_io import ImageError, read_image
    from edge_runtime.pipeline import Pipeline

    require_eval_extra()
    console = console or Console(stderr=True)
    truth_list: list[int] = []
    bundle = load_bundle(bundle_dir)
    if bundle.archive is not None:
        raise DermedgeError(f"{bundle_dir} is a .zip: calibrate the bundle folder, then zip it")
    table = read_label_table(labels, split)
    if table.binary:
        raise DermedgeError("calibration needs class labels (HAM10000, ISIC one-hot or split.csv)")
    names = [n for n, v in bundle.variants.items() if v["format"] == "tflite" and (not variants or n in variants)]
    if not names:
        raise DermedgeError(f"no TFLite variant to calibrate in {bundle_dir}")
    index = {c: i for i, c in enumerate(bundle.labels)}
    files = images_by_stem(Path(images))
    target_of = dict(zip(table.ids, table.targets))
    paths = [files[i] for i in table.ids if i in files and target_of[i] in index]
    if not paths:
        raise DermedgeError(f"none of the {len(table.ids)} {split} images is in {images}")
    manifest = bundle.manifest
    malignant = [index[c] for c in bundle.manifest["malignant_labels"]]
    summary = {}
    skipped, decoded = Skipped(), []  # decoded once, for every variant
    for path in paths:
        try:
            decoded.append(read_image(path))
        except ImageError as exc:
            skipped.add(path, str(exc))
        else:
            truth_list.append(index[target_of[path.stem]])
    truth = np.asarray(truth_list)
    for name in names:
        pipeline = Pipeline(bundle, name, threads)
        with progress_bar(console) as progress:
            task = progress.add_task(f"calibrating {name}", total=len(decoded))
            raw = []
            for image in decoded:
                raw.append([pipeline.predict(image).raw_probabilities[c] for c in pipeline.labels])
                progress.advance(task)
        raw = np.asarray(raw, np.float32)
        temperature = fit_temperature(raw, truth)
        calibrated = apply_temperature(raw, temperature)
        is_malignant = np.isin(truth, malignant)
        score = calibrated[:, malignant].sum(1)
        # Without a malignant case to aim at (tiny data), the manifest's threshold stands.
        threshold = threshold_for_sensitivity(is_malignant, score, sensitivity) if is_malignant.any() \
            else float(manifest["thresholds"]["malignant"])
        min_confidence = confidence_threshold(calibrated.max(1), coverage)
        point = binary_operating_point(is_malignant, score >= threshold, score)
        entry = {
            "temperature": round(temperature, 4), "malignant_threshold": round(threshold, 4),
            "min_confidence": round(min_confidence, 4),
            "fitted_on": {"split": split, "images": int(len(truth)), "target_sensitivity": sensitivity,
                          "target_coverage": coverage, "skipped": len(skipped)},
            "on_fit_data": {"ece_before": round(expected_calibration_error(raw, truth), 4),
                            "ece_after": round(expected_calibration_error(calibrated, truth), 4),
                            "malignant_sensitivity": round(point["sensitivity"], 4),
                            "malignant_specificity": round(point["specificity"], 4)},
        }
        manifest["variants"][name]["calibration"] = entry
        summary[name] = entry
    write_manifest(bundle.root, manifest)
    return summary
