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
from edge_runtime.image_io import MAX_PIXELS, ImageError, to_rgb8
from edge_runtime.interpreter import TFLiteModel
from edge_runtime.postprocess import clean_mask
from edge_runtime.preprocess import crop_to_lesion


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

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

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
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
        }


class Pipeline:
    """Two TFLite interpreters from one bundle variant, created once and reused for every image."""

    def __init__(self, bundle: Bundle, variant: str | None = None, num_threads: int | None = None,
                 backend: str | None = None, max_pixels: int = MAX_PIXELS):
        variant = variant or bundle.default_variant
        info = bundle.variants.get(variant)
        if info is None:
            raise BundleError(f"variant {variant!r} not in bundle; it has: {', '.join(bundle.variants)}")
        if info.get("format") != "tflite":
            raise BundleError(f"variant {variant!r} is {info.get('format')}, not TFLite: the edge runtime "
                              "runs TFLite variants (Core ML runs in an iOS/macOS app)")
        manifest = bundle.manifest
        self.bundle, self.variant, self.max_pixels = bundle, variant, max_pixels
        self.labels = tuple(manifest["labels"])
        self.malignant_labels = tuple(manifest["malignant_labels"])
        self._malignant_index = [self.labels.index(k) for k in self.malignant_labels]
        self.crop_margin = float(manifest["crop_margin"])
        self.mask_threshold = float(manifest["thresholds"]["mask"])
        self.malignant_threshold = float(manifest["thresholds"]["malignant"])
        self.segmenter = TFLiteModel(content=bundle.read(variant, "segmenter"), num_threads=num_threads,
                                     backend=backend)
        self.classifier = TFLiteModel(content=bundle.read(variant, "classifier"), num_threads=num_threads,
                                      backend=backend)
        self.backend = self.segmenter.backend
        self.num_threads = num_threads
        if self.classifier.output_size != len(self.labels):
            raise BundleError(f"{variant} classifier has {self.classifier.output_size} outputs, "
                              f"the manifest lists {len(self.labels)} labels")

    @classmethod
    def load(cls, bundle: str | Path | None = None, variant: str | None = None,
             num_threads: int | None = None, backend: str | None = None) -> "Pipeline":
        """From a bundle folder or `.zip` (None: the bundle installed with dermedge); the variant
        defaults to the manifest's `default_variant`, the full-integer model export recommends."""
        return cls(load_bundle(bundle), variant, num_threads, backend)

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
        return self.classifier.run(crop)

    def predict(self, image: np.ndarray) -> Result:
        """An RGB image of any size (uint8, or gray/RGBA/16-bit, normalised here) -> Result."""
        start = time.perf_counter()
        image = check_image(image, self.max_pixels)
        height, width = image.shape[:2]
        t0 = time.perf_counter()
        probability = self.segment(image)
        t1 = time.perf_counter()
        mask = self.lesion_mask(probability, (height, width))
        lesion_found = bool(mask.any())
        size = self.classifier.input_size[0]
        crop, box = crop_to_lesion(image, mask if lesion_found else None, size, self.crop_margin)
        t2 = time.perf_counter()
        probs = self.classify(crop)
        t3 = time.perf_counter()
        malignant_probability = float(probs[self._malignant_index].sum())
        top = int(np.argmax(probs))
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
            latency_ms={"preprocess": (t0 - start) * 1e3, "segment": (t1 - t0) * 1e3,
                        "crop": (t2 - t1) * 1e3, "classify": (t3 - t2) * 1e3, "total": (t3 - start) * 1e3},
            mask=mask,
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
