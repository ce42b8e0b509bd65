"""The on-device pipeline: image -> quality gate -> segment -> clean mask -> lesion gate -> crop ->
classify -> `Result`.

Each arrow is one method used everywhere (training, export checks, `predict`, `evaluate`, the
stream), and `Pipeline.analyse` is the one place that chains them, so what is measured is what runs
on the device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.bundle import Bundle, BundleError, load_bundle
from edge_runtime.calibration import apply_temperature
from edge_runtime.image_io import MAX_PIXELS, ImageError, to_rgb8
from edge_runtime.interpreter import TFLiteModel
from edge_runtime.postprocess import clean_mask
from edge_runtime.preprocess import CropBox, crop_to_lesion
from edge_runtime.quality import HINTS, ImageQuality, LesionQuality, QualityThresholds, assess_image, \
    assess_lesion

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


@dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline runs (MediaPipe Tasks' options object): the defaults are the ones the CLI
    shows. Positional order as `Pipeline.load(bundle, variant, num_threads)` always took them."""

    variant: str | None = None  # None: the bundle's `default_variant`
    num_threads: int | None = None  # None: LiteRT's choice
    backend: str | None = None  # an interpreter module (interpreter.BACKENDS); None: the first that imports
    tta: bool = False  # classify each crop's flips and a quarter turn, and average (4x the classifier)
    quality: QualityThresholds = QualityThresholds()  # the quality gate (edge_runtime.quality)
    max_pixels: int = MAX_PIXELS  # larger images are refused, not decoded


# What `tta` averages: the crop, its two flips and a quarter turn (benchmarks/tta_views.py scores each)
TTA_VIEWS = {
    "identity": lambda crop: crop,
    "flip_lr": lambda crop: crop[:, ::-1],
    "flip_ud": lambda crop: crop[::-1],
    "rot90": lambda crop: np.rot90(crop),
}


@dataclass
class Analysis:
    """One image through `Pipeline.analyse`: `reason` is the first quality-gate problem found (None:
    none), `result` the classification (None when a gate stopped the image before the classifier)."""

    image: np.ndarray  # the checked RGB uint8 image (1x1 black for an unreadable frame)
    reason: str | None = None
    image_quality: ImageQuality | None = None
    lesion_quality: LesionQuality | None = None
    result: Result | None = None

    def quality_dict(self) -> dict:
        out = {}
        if self.image_quality:
            out.update({k: v for k, v in self.image_quality.to_dict().items() if k != "problem"})
        if self.lesion_quality:
            out["lesion"] = {k: v for k, v in self.lesion_quality.to_dict().items() if k != "problem"}
        return out


@dataclass
class Location:
    """Where the lesion is: the pipeline's locate step (segment, clean mask, crop) on one image."""

    mask: np.ndarray  # boolean, at image size
    crop: np.ndarray  # the square crop, resized (the whole image when no lesion is found)
    box: CropBox | None  # the crop's box in the image (None: the whole image)


class Pipeline:
    """Two TFLite interpreters from one bundle variant, created once and reused for every image.

    `Pipeline(bundle, options)` with a `PipelineOptions`, or its fields: `Pipeline(bundle, "int8", 1)`,
    `Pipeline(bundle, variant="int8", tta=True)`, `Pipeline(bundle, options, tta=True)` (a changed copy)."""

    def __init__(self, bundle: Bundle, options: PipelineOptions | str | None = None, *args, **fields):
        options = _options(options, args, fields)
        variant = options.variant or bundle.default_variant
        info = bundle.variants.get(variant)
        if info is None:
            raise BundleError(f"variant {variant!r} not in bundle; it has: {', '.join(bundle.variants)}")
        if info.get("format") != "tflite":
            raise BundleError(f"variant {variant!r} is {info.get('format')}, not TFLite: the edge runtime "
                              "runs TFLite variants (Core ML runs in an iOS/macOS app)")
        threads, backend = options.num_threads, options.backend
        segmenter = TFLiteModel(content=bundle.read(variant, "segmenter"), num_threads=threads, backend=backend)
        classifier = TFLiteModel(content=bundle.read(variant, "classifier"), num_threads=threads, backend=backend)
        self._configure(bundle, replace(options, variant=variant), segmenter, classifier)
        self.backend = segmenter.backend

    @classmethod
    def load(cls, bundle: str | Path | None = None, options: PipelineOptions | str | None = None, *args,
             **fields) -> "Pipeline":
        """From a bundle folder or `.zip` (None: the bundle installed with dermedge); the variant
        defaults to the manifest's `default_variant`, the full-integer model export recommends."""
        return cls(load_bundle(bundle), options, *args, **fields)

    @classmethod
    def from_models(cls, bundle: Bundle, name: str, segmenter, classifier, options: PipelineOptions | None = None,
                    **fields) -> "Pipeline":
        """The same pipeline (bundle labels, thresholds, crop margin, quality gate) around other models
        with `TFLiteModel`'s interface (`run`, `input_size`, `output_size`): e.g. the Keras originals
        that `dermedge benchmark` sets against the exports."""
        pipeline = cls.__new__(cls)
        pipeline._configure(bundle, replace(_options(options, (), fields), variant=name), segmenter, classifier)
        pipeline.backend = getattr(segmenter, "backend", name)
        return pipeline

    def _configure(self, bundle: Bundle, options: PipelineOptions, segmenter, classifier) -> None:
        manifest = bundle.manifest
        self.bundle, self.options = bundle, options
        self.labels = tuple(manifest["labels"])
        self.malignant_labels = tuple(manifest["malignant_labels"])
        self._malignant_index = [self.labels.index(k) for k in self.malignant_labels]
        self.crop_margin = float(manifest["crop_margin"])
        self.colour_constancy = manifest["classifier"].get("colour_constancy", "none")
        self.mask_threshold = float(manifest["thresholds"]["mask"])
        # `dermedge calibrate` fits these per variant on validation data; without them the
        # probabilities are the model's own and only the manifest's thresholds apply.
        calibration = bundle.variants.get(options.variant, {}).get("calibration") or {}
        self.temperature = float(calibration.get("temperature", 1.0))
        self.malignant_threshold = float(calibration.get("malignant_threshold", manifest["thresholds"]["malignant"]))
        self.min_confidence = float(calibration.get("min_confidence", 0.0))
        self.segmenter, self.classifier = segmenter, classifier
        if classifier.output_size != len(self.labels):
            raise BundleError(f"{options.variant} classifier has {classifier.output_size} outputs, "
                              f"the manifest lists {len(self.labels)} labels")

    # What the options say, under the names the callers (benchmark, stream summary) read.
    variant = property(lambda self: self.options.variant)
    num_threads = property(lambda self: self.options.num_threads)
    tta = property(lambda self: self.options.tta)
    quality = property(lambda self: self.options.quality)
    max_pixels = property(lambda self: self.options.max_pixels)

    # The stages, public so evaluation, Grad-CAM and the benchmark can time or reuse them one by one.
    def segment(self, image: np.ndarray) -> np.ndarray:
        """Lesion probability at the segmenter's resolution."""
        height, width = self.segmenter.input_size
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return self.segmenter.run(small)[..., 0]

    def lesion_mask(self, probability: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """Boolean mask at (height, width): thresholded, largest component, holes filled."""
        return clean_mask(probability, image_size, self.mask_threshold)

    def crop(self, image: np.ndarray, mask: np.ndarray, size: int | None = None) -> tuple[np.ndarray, CropBox | None]:
        """The square lesion crop at `size` (default: the classifier's input), the whole image without a lesion."""
        size = size or self.classifier.input_size[0]
        return crop_to_lesion(image, mask if mask.any() else None, size, self.crop_margin, self.colour_constancy)

    def classify(self, crop: np.ndarray) -> np.ndarray:
        """Class probabilities of a crop; with `tta`, the mean over its flips and a quarter turn
        (a dermoscopic lesion has no up or left, so each view is as valid as the original)."""
        if not self.tta:
            return self.classifier.run(crop)
        return np.mean([self.classifier.run(np.ascontiguousarray(view(crop))) for view in TTA_VIEWS.values()],
                       axis=0)

    def locate(self, image: np.ndarray, size: int | None = None) -> Location:
        """Segment, clean the mask and crop, without classifying (Grad-CAM, segmentation scores)."""
        image = check_image(image, self.max_pixels)
        mask = self.lesion_mask(self.segment(image), image.shape[:2])
        return Location(mask, *self.crop(image, mask, size))

    def predict(self, image: np.ndarray) -> Result:
        """An RGB image of any size (uint8, or gray/RGBA/16-bit, normalised here) -> Result.

        The quality gate never stops a single image from being classified (the user asked for it):
        a failed check makes the answer inconclusive, with the reason. Raises ImageError for an
        array that cannot be a photo."""
        return self.analyse(image).result

    def analyse(self, image: np.ndarray, stop_at_gate: bool = False) -> Analysis:
        """The whole pipeline on one image: image check -> exposure and focus gate -> segment -> clean
        mask -> lesion gate -> crop -> classify.

        `stop_at_gate` (the stream): an image that fails a gate stops there, before the models it
        would waste (`result` None; an unreadable array is the reason `unreadable_frame`). Without it
        (`predict`): every image is classified and a failed gate makes the answer inconclusive, with
        the first reason found; an unreadable array raises ImageError. The mask serves the lesion gate
        and the crop alike, so an image is segmented once whatever happens to it."""
        start = time.perf_counter()
        try:
            image = check_image(image, self.max_pixels)
        except ImageError:
            if not stop_at_gate:
                raise
            return Analysis(np.zeros((1, 1, 3), np.uint8), "unreadable_frame")
        t0 = time.perf_counter()
        image_quality = assess_image(image, self.quality)
        if stop_at_gate and image_quality.problem:
            return Analysis(image, image_quality.problem, image_quality)
        t1 = time.perf_counter()
        probability = self.segment(image)
        t2 = time.perf_counter()
        mask = self.lesion_mask(probability, image.shape[:2])
        lesion_quality = assess_lesion(mask, self.quality)
        reason = image_quality.problem or lesion_quality.problem
        if stop_at_gate and reason:
            return Analysis(image, reason, image_quality, lesion_quality)
        crop, box = self.crop(image, mask)
        t3 = time.perf_counter()
        raw = self.classify(crop)
        probs = apply_temperature(raw, self.temperature)
        t4 = time.perf_counter()
        # "crop" is the CPU work around the models: the quality gate, mask clean-up and crop.
        timings = {"preprocess": (t0 - start) * 1e3, "segment": (t2 - t1) * 1e3,
                   "crop": (t1 - t0 + t3 - t2) * 1e3, "classify": (t4 - t3) * 1e3}
        timings["total"] = sum(timings.values())  # the stages are back to back: their sum is the whole
        return Analysis(image, reason, image_quality, lesion_quality,
                        self._result(probs, raw, mask, box, image.shape[:2], timings, reason))

    def _result(self, probs: np.ndarray, raw: np.ndarray, mask: np.ndarray, box: CropBox | None,
                shape: tuple[int, int], timings: dict[str, float], reason: str | None) -> Result:
        malignant_probability = float(probs[self._malignant_index].sum())
        top = int(np.argmax(probs))
        if reason is None and probs[top] < self.min_confidence:
            reason = UNCERTAIN
        return Result(
            label=self.labels[top],
            probabilities={k: float(p) for k, p in zip(self.labels, probs)},
            malignant_probability=malignant_probability,
            malignant=malignant_probability >= self.malignant_threshold,
            malignant_threshold=self.malignant_threshold,
            lesion_found=bool(mask.any()),
            box=box.as_list() if box else None,
            lesion_area_fraction=float(mask.mean()),
            image_size=(shape[1], shape[0]),
            latency_ms=timings,
            mask=mask,
            raw_probabilities={k: float(p) for k, p in zip(self.labels, raw)},
            inconclusive_reason=reason,
        )


def _options(options: PipelineOptions | str | None, args: tuple, fields: dict) -> PipelineOptions:
    """A `PipelineOptions`, changed by `fields`; or one made of the fields (positional ones from the variant on)."""
    if isinstance(options, PipelineOptions):
        if args:
            raise TypeError("give a PipelineOptions or its fields, not both positionally")
        return replace(options, **fields)
    return PipelineOptions(options, *args, **fields)


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
