"""The on-device pipeline: image -> segment -> clean mask -> crop -> classify -> `Result`.

Each arrow is one function used everywhere (training, export checks, `predict`, `evaluate`, the
stream), so what is measured is what runs on the device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.bundle import Bundle, BundleError, load_bundle
from edge_runtime.calibration import apply_temperature
from edge_runtime.image_io import MAX_PIXELS, ImageError, to_rgb8
from edge_runtime.interpreter import TFLiteModel
from edge_runtime.postprocess import clean_mask
from edge_runtime.preprocess import crop_to_lesion
from edge_runtime.quality import HINTS, QualityThresholds, assess_image, assess_lesion

UNCERTAIN = "uncertain"  # the inconclusive reason when the top probability is under `min_confidence`


@dataclass
class Result:
    """What the pipeline says about one image. `to_dict` is what `predict --json` writes."""

    label: str
    probabilities: dict[str, float]
    malignant_probability: float
    malignant: bool
    malignant_threshold: float
    lesion_found: bool
    box: list[int] | None  # x0, y0, x1, y1 of the crop the classifier saw (None: whole image)
    lesion_area_fraction: float
    image_size: tuple[int, int]  # width, height
    latency_ms: dict[str, float]
    mask: np.ndarray = field(repr=False)  # boolean lesion mask at image size
    # Calibrated `probabilities` come from these by the variant's temperature (equal without one).
    raw_probabilities: dict[str, float] | None = field(default=None, repr=False)
    # An answer not to act on, and why: a quality-gate reason (edge_runtime.quality.REASONS) or
    # "uncertain". The label and probabilities are still given, for the record.
    inconclusive_reason: str | None = None

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def inconclusive(self) -> bool:
        return self.inconclusive_reason is not None

    @property
    def hint(self) -> str | None:
        """What the user can do about an inconclusive result, in words."""
        if self.inconclusive_reason == UNCERTAIN:
            return "the classifier is unsure: take another image or refer"
        return HINTS.get(self.inconclusive_reason)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "malignant_probability": round(self.malignant_probability, 6),
            "malignant": self.malignant,
            "malignant_threshold": self.malignant_threshold,
            "lesion_found": self.lesion_found,
            "box": self.box,
            "lesion_area_fraction": round(self.lesion_area_fraction, 6),
            "image_size": list(self.image_size),
            "inconclusive": self.inconclusive,
            "inconclusive_reason": self.inconclusive_reason,
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
        }


class Pipeline:
    """Two TFLite interpreters from one bundle variant, created once and reused for every image."""

    def __init__(self, bundle: Bundle, variant: str | None = None, num_threads: int | None = None,
                 backend: str | None = None, max_pixels: int = MAX_PIXELS, tta: bool = False):
        variant = variant or bundle.default_variant
        info = bundle.variants.get(variant)
        if info is None:
            raise BundleError(f"variant {variant!r} not in bundle; it has: {', '.join(bundle.variants)}")
        if info.get("format") != "tflite":
            raise BundleError(f"variant {variant!r} is {info.get('format')}, not TFLite: the edge runtime "
                              "runs TFLite variants (Core ML runs in an iOS/macOS app)")
        segmenter = TFLiteModel(content=bundle.read(variant, "segmenter"), num_threads=num_threads, backend=backend)
        classifier = TFLiteModel(content=bundle.read(variant, "classifier"), num_threads=num_threads, backend=backend)
        self._configure(bundle, variant, segmenter, classifier, max_pixels)
        self.backend = segmenter.backend
        self.num_threads = num_threads
        self.tta = tta

    @classmethod
    def from_models(cls, bundle: Bundle, name: str, segmenter, classifier, max_pixels: int = MAX_PIXELS) -> "Pipeline":
        """The same pipeline (bundle labels, thresholds, crop margin) around other models with
        `TFLiteModel`'s interface (`run`, `input_size`, `output_size`): e.g. the Keras originals
        that `dermedge benchmark` sets against the exports."""
        pipeline = cls.__new__(cls)
        pipeline._configure(bundle, name, segmenter, classifier, max_pixels)
        pipeline.backend = getattr(segmenter, "backend", name)
        pipeline.num_threads = None
        pipeline.tta = False
        return pipeline

    def _configure(self, bundle: Bundle, variant: str, segmenter, classifier, max_pixels: int) -> None:
        manifest = bundle.manifest
        self.bundle, self.variant, self.max_pixels = bundle, variant, max_pixels
        self.labels = tuple(manifest["labels"])
        self.malignant_labels = tuple(manifest["malignant_labels"])
        self._malignant_index = [self.labels.index(k) for k in self.malignant_labels]
        self.crop_margin = float(manifest["crop_margin"])
        self.mask_threshold = float(manifest["thresholds"]["mask"])
        # `dermedge calibrate` fits these per variant on validation data; without them the
        # probabilities are the model's own and only the manifest's thresholds apply.
        calibration = bundle.variants.get(variant, {}).get("calibration") or {}
        self.temperature = float(calibration.get("temperature", 1.0))
        self.malignant_threshold = float(calibration.get("malignant_threshold", manifest["thresholds"]["malignant"]))
        self.min_confidence = float(calibration.get("min_confidence", 0.0))
        self.quality = QualityThresholds()
        self.segmenter, self.classifier = segmenter, classifier
        if classifier.output_size != len(self.labels):
            raise BundleError(f"{variant} classifier has {classifier.output_size} outputs, "
                              f"the manifest lists {len(self.labels)} labels")

    @classmethod
    def load(cls, bundle: str | Path | None = None, variant: str | None = None,
             num_threads: int | None = None, backend: str | None = None, tta: bool = False) -> "Pipeline":
        """From a bundle folder or `.zip` (None: the bundle installed with dermedge); the variant
        defaults to the manifest's `default_variant`, the full-integer model export recommends."""
        return cls(load_bundle(bundle), variant, num_threads, backend, tta=tta)

    # The three stages, public so evaluation and the stream can time or reuse them one by one.
    def segment(self, image: np.ndarray) -> np.ndarray:
        """Lesion probability at the segmenter's resolution."""
        height, width = self.segmenter.input_size
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return self.segmenter.run(small)[..., 0]

    def lesion_mask(self, probability: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """Boolean mask at (height, width): thresholded, largest component, holes filled."""
        return clean_mask(probability, image_size, self.mask_threshold)

    def classify(self, crop: np.ndarray) -> np.ndarray:
        """Class probabilities of a crop; with `tta`, the mean over its flips and a quarter turn
        (a dermoscopic lesion has no up or left, so each view is as valid as the original)."""
        if not self.tta:
            return self.classifier.run(crop)
        views = (crop, crop[:, ::-1], crop[::-1], np.rot90(crop))
        return np.mean([self.classifier.run(np.ascontiguousarray(view)) for view in views], axis=0)

    def predict(self, image: np.ndarray) -> Result:
        """An RGB image of any size (uint8, or gray/RGBA/16-bit, normalised here) -> Result."""
        start = time.perf_counter()
        image = check_image(image, self.max_pixels)
        height, width = image.shape[:2]
        t0 = time.perf_counter()
        probability = self.segment(image)
        t1 = time.perf_counter()
        mask = self.lesion_mask(probability, (height, width))
        # The quality gate never stops a single image from being classified (the user asked for
        # it); a failed check makes the answer inconclusive, with the reason.
        problem = assess_image(image, self.quality).problem or assess_lesion(mask, self.quality).problem
        timings = {"preprocess": (t0 - start) * 1e3, "segment": (t1 - t0) * 1e3}
        return self.classify_lesion(image, mask, timings, since=t1, problem=problem)

    def classify_lesion(self, image: np.ndarray, mask: np.ndarray, latency_ms: dict[str, float] | None = None,
                        since: float | None = None, problem: str | None = None) -> Result:
        """The second half of `predict`, from a lesion mask already made (`image` already checked).

        The stream gates each frame on its mask before paying for the classifier, and must not
        segment the frames that pass a second time. `latency_ms` carries the earlier stages'
        timings; `since` is when the mask work started (its time is counted in "crop"); `problem` is
        a quality-gate reason already found, which makes the result inconclusive."""
        t1 = time.perf_counter() if since is None else since
        height, width = image.shape[:2]
        lesion_found = bool(mask.any())
        size = self.classifier.input_size[0]
        crop, box = crop_to_lesion(image, mask if lesion_found else None, size, self.crop_margin)
        t2 = time.perf_counter()
        raw = self.classify(crop)
        probs = apply_temperature(raw, self.temperature)
        t3 = time.perf_counter()
        timings = {**(latency_ms or {}), "crop": (t2 - t1) * 1e3, "classify": (t3 - t2) * 1e3}
        timings["total"] = sum(timings.values())  # the stages are back to back: their sum is the whole
        malignant_probability = float(probs[self._malignant_index].sum())
        top = int(np.argmax(probs))
        if problem is None and probs[top] < self.min_confidence:
            problem = UNCERTAIN
        return Result(
            label=self.labels[top],
            probabilities={k: float(p) for k, p in zip(self.labels, probs)},
            malignant_probability=malignant_probability,
            malignant=malignant_probability >= self.malignant_threshold,
            malignant_threshold=self.malignant_threshold,
            lesion_found=lesion_found,
            box=box.as_list() if box else None,
            lesion_area_fraction=float(mask.mean()),
            image_size=(width, height),
            latency_ms=timings,
            mask=mask,
            raw_probabilities={k: float(p) for k, p in zip(self.labels, raw)},
            inconclusive_reason=problem,
        )


def check_image(image: np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any image array -> RGB uint8, refusing what cannot be a photo (empty, huge, wrong shape)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2], default=0) < 1:
        raise ImageError(f"not an image array: shape {image.shape}")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"image is {image.shape[1]}x{image.shape[0]}, over the {max_pixels:,}-pixel limit")
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    return to_rgb8(image)
