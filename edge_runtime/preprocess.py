"""The one crop function: training (ground-truth masks) and the runtime (U-Net masks) both call it,
so the classifier always sees lesions framed the same way."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_CROP_MARGIN = 0.15  # fraction of the lesion box side added on every side
# How a crop's colours are normalised before the classifier: "none", or "shades-of-grey" (the
# whole photo's illuminant, estimated as the Minkowski p-norm of each channel, made grey).
COLOUR_CONSTANCY = ("none", "shades-of-grey")
SHADES_OF_GREY_POWER = 6
_ILLUMINANT_SIDE = 256  # the estimate is taken on a copy this long at most: same on any camera


@dataclass(frozen=True)
class CropBox:
    """A pixel box, `x1`/`y1` exclusive, in the coordinates of the image it was cut from."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def lesion_box(mask: np.ndarray, margin: float = DEFAULT_CROP_MARGIN) -> CropBox | None:
    """Square box around the mask's foreground grown by `margin`, shifted to stay inside the image.

    Square because the classifier's input is square: resizing a square crop keeps the lesion's
    shape. Where the square cannot fit (lesion wider than the image is tall), the box is clipped
    to the image. Returns None when the mask has no foreground.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    height, width = mask.shape
    bx0, bx1 = int(xs.min()), int(xs.max()) + 1
    by0, by1 = int(ys.min()), int(ys.max()) + 1
    side = max(bx1 - bx0, by1 - by0)
    side = int(round(side * (1.0 + 2.0 * margin)))
    side = max(side, 8)
    cx, cy = (bx0 + bx1) / 2.0, (by0 + by1) / 2.0
    x0, x1 = _fit_span(cx, side, width)
    y0, y1 = _fit_span(cy, side, height)
    return CropBox(x0, y0, x1, y1)


def _fit_span(center: float, side: int, limit: int) -> tuple[int, int]:
    """A span of length `side` centred on `center`, moved (not shrunk) to fit in [0, limit)."""
    side = min(side, limit)
    start = int(round(center - side / 2.0))
    start = min(max(start, 0), limit - side)
    return start, start + side


def shades_of_grey_gains(image: np.ndarray, power: int = SHADES_OF_GREY_POWER) -> np.ndarray:
    """Per-channel gains (3,) that turn the photo's estimated illuminant grey (Finlayson & Trezzi's
    shades of grey, p = 6, as the ISIC 2018/2019 winners used it).

    Why: dermatoscopes differ in light and white balance; a classifier trained on one device's
    colours reads another's cast as a change of the lesion. The gains are normalised so that a
    photo already grey under its light keeps its brightness (gains of 1)."""
    height, width = image.shape[:2]
    scale = _ILLUMINANT_SIDE / max(height, width)
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    pixels = image.reshape(-1, 3).astype(np.float64) / 255.0
    illuminant = np.power(np.mean(np.power(pixels, power), axis=0), 1.0 / power)
    norm = np.linalg.norm(illuminant)
    if norm < 1e-6:  # a black photo has no light to correct
        return np.ones(3, np.float32)
    return (norm / (np.sqrt(3.0) * np.maximum(illuminant, 1e-6))).astype(np.float32)


def apply_gains(image: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """uint8 RGB times per-channel gains, rounded and clipped to 0..255."""
    return np.clip(image.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8)


def crop_to_lesion(
    image: np.ndarray,
    mask: np.ndarray | None,
    size: int,
    margin: float = DEFAULT_CROP_MARGIN,
    colour_constancy: str = "none",
) -> tuple[np.ndarray, CropBox | None]:
    """Cut the lesion out of `image` with `mask` and resize it to `size` x `size`.

    `mask` may be at any resolution (a U-Net's 128x128 output, say): it is resized to the image
    first, nearest-neighbour, so the box is found at image resolution. With no mask or an empty
    mask the whole image is used and the box is None: the caller reports "no lesion found".
    `colour_constancy` "shades-of-grey" corrects the crop by the whole photo's illuminant (the
    skin around the lesion says more about the light than the lesion does).
    """
    if colour_constancy not in COLOUR_CONSTANCY:
        raise ValueError(f"colour_constancy must be one of {COLOUR_CONSTANCY}, got {colour_constancy!r}")
    height, width = image.shape[:2]
    box = None
    if mask is not None:
        if mask.shape[:2] != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        box = lesion_box(mask > 0, margin)
    region = image if box is None else image[box.y0 : box.y1, box.x0 : box.x1]
    interpolation = cv2.INTER_AREA if min(region.shape[:2]) > size else cv2.INTER_LINEAR
    crop = cv2.resize(region, (size, size), interpolation=interpolation)
    if colour_constancy == "shades-of-grey":
        crop = apply_gains(crop, shades_of_grey_gains(image))
    return crop, box
