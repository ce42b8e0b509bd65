"""The frame quality gate: is this camera frame worth classifying, and if not, why not.

A screening app that goes quiet on a blurred or badly lit frame leaves the user guessing, so every
rejection has a named reason and a hint. The gate runs in two halves so a rejected frame costs as
little as possible: `assess_image` (exposure, focus) needs only the pixels; `assess_lesion`
(no lesion, too small, cut by the border) needs the segmenter's mask, never the classifier.

The image measures are taken on a grey copy scaled to `analysis_side` pixels on its long side, so
the same thresholds hold for a 640x480 dermatoscope and a 4K phone camera. The defaults were set on
2,000 HAM10000 images (the 200x150 copies in ../shared/data, i.e. at the analysis scale) run through
the int8-mixed scratch U-Net shipped then (the thresholds hold for the Lite0-encoder U-Net shipped since):
- sharpness (variance of the Laplacian) < 6 rejects 0.1% of them, and passes 0.75% of the same images
  after a Gaussian blur of sigma 2 px (a lesion the camera is not focused on);
- mean brightness spans 87..209 there; 40 and 230 leave room for real lighting before rejecting;
- lesion area < 1% of the frame rejects 0.35%; more than 20% of the lesion outline lying on the
  image border (a lesion cut in half has ~40%) rejects 2.5%: the camera should be moved back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# In the order they are checked: a black frame is "underexposed", not also "blurry".
REASONS = ("unreadable_frame", "underexposed", "overexposed", "blurry", "no_lesion", "lesion_too_small",
           "lesion_cut_by_border")
HINTS = {
    "unreadable_frame": "the camera sent a frame that is not an image",
    "underexposed": "too dark: check the dermatoscope light",
    "overexposed": "too bright or glare: lower the light or add contact fluid",
    "blurry": "out of focus or moving: hold still and refocus",
    "no_lesion": "no lesion in view: centre the lesion",
    "lesion_too_small": "lesion too small in the frame: move closer",
    "lesion_cut_by_border": "lesion cut by the frame edge: centre it or move back",
}


@dataclass(frozen=True)
class QualityThresholds:
    """Where the gate draws its lines (see the module docstring for how the defaults were set)."""

    analysis_side: int = 200  # long side of the grey copy the image measures are taken on
    min_sharpness: float = 6.0  # variance of the Laplacian at the analysis scale
    min_brightness: float = 40.0  # mean grey level, 0..255
    max_brightness: float = 230.0
    max_clipped_fraction: float = 0.25  # pixels at >= 250 (glare, blown-out light)
    min_lesion_fraction: float = 0.01  # lesion area / frame area
    max_border_fraction: float = 0.20  # share of the lesion outline lying on the frame edge


@dataclass(frozen=True)
class ImageQuality:
    brightness: float
    clipped_fraction: float
    sharpness: float
    problem: str | None

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LesionQuality:
    area_fraction: float
    border_fraction: float
    box: tuple[float, float, float, float] | None  # tight lesion box, x0 y0 x1 y1 as fractions of the frame
    problem: str | None

    def to_dict(self) -> dict:
        return {"area_fraction": round(self.area_fraction, 4), "border_fraction": round(self.border_fraction, 4),
                "box": [round(v, 4) for v in self.box] if self.box else None, "problem": self.problem}


def analysis_grey(image: np.ndarray, side: int) -> np.ndarray:
    """Grey copy of an RGB image with its long side at most `side` (area-averaged, never enlarged)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    # One area resize straight to the analysis scale (~1 ms for 640x480): resizing in two steps
    # would be faster but smooths more, and the sharpness threshold was set on this one.
    scale = side / max(grey.shape[:2])
    if scale < 1:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian: edges and texture make it large, defocus and motion blur small."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess_image(image: np.ndarray, thresholds: QualityThresholds = QualityThresholds()) -> ImageQuality:
    """Exposure and focus of an RGB uint8 frame, and the first problem found (None: usable)."""
    grey = analysis_grey(image, thresholds.analysis_side)
    brightness = float(grey.mean())
    clipped = float(np.count_nonzero(grey >= 250)) / grey.size
    sharp = sharpness(grey)
    problem = None
    if brightness < thresholds.min_brightness:
        problem = "underexposed"
    elif brightness > thresholds.max_brightness or clipped > thresholds.max_clipped_fraction:
        problem = "overexposed"
    elif sharp < thresholds.min_sharpness:
        problem = "blurry"
    return ImageQuality(brightness, clipped, sharp, problem)


def border_fraction(mask: np.ndarray) -> float:
    """Share of the mask's outline that lies on the image edge (0: fully inside, ~0.4: cut in half).

    The mask is padded with background first, so the edge pixels count as outline too."""
    padded = np.pad(mask.astype(np.uint8), 1)
    outline = padded & ~cv2.erode(padded, np.ones((3, 3), np.uint8)).astype(bool)
    total = int(np.count_nonzero(outline))
    if total == 0:
        return 0.0
    on_edge = (np.count_nonzero(mask[0]) + np.count_nonzero(mask[-1]) + np.count_nonzero(mask[1:-1, 0])
               + np.count_nonzero(mask[1:-1, -1]))
    return on_edge / total


def assess_lesion(mask: np.ndarray, thresholds: QualityThresholds = QualityThresholds()) -> LesionQuality:
    """Whether the segmenter's lesion mask is one the classifier can be trusted on.

    Measured on a copy of the mask at the analysis scale: cheap at any camera resolution."""
    height, width = mask.shape
    scale = min(1.0, thresholds.analysis_side / max(height, width))
    small = mask.astype(np.uint8)
    if scale < 1:
        small = cv2.resize(small, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_NEAREST)
    if not small.any():
        return LesionQuality(0.0, 0.0, None, "no_lesion")
    area = float(np.count_nonzero(small)) / small.size
    x, y, w, h = cv2.boundingRect(small)
    sh, sw = small.shape
    box = (x / sw, y / sh, (x + w) / sw, (y + h) / sh)
    cut = border_fraction(small.astype(bool))
    problem = None
    if area < thresholds.min_lesion_fraction:
        problem = "lesion_too_small"
    elif cut > thresholds.max_border_fraction:
        problem = "lesion_cut_by_border"
    return LesionQuality(area, cut, box, problem)
