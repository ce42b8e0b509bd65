"""The one crop function: training (ground-truth masks) and the runtime (U-Net masks) both call it,
so the classifier always sees lesions framed the same way."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_CROP_MARGIN = 0.15  # fraction of the lesion box side added on every side


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


def crop_to_lesion(
    image: np.ndarray,
    mask: np.ndarray | None,
    size: int,
    margin: float = DEFAULT_CROP_MARGIN,
) -> tuple[np.ndarray, CropBox | None]:
    """Cut the lesion out of `image` with `mask` and resize it to `size` x `size`.

    `mask` may be at any resolution (a U-Net's 128x128 output, say): it is resized to the image
    first, nearest-neighbour, so the box is found at image resolution. With no mask or an empty
    mask the whole image is used and the box is None: the caller reports "no lesion found".
    """
    height, width = image.shape[:2]
    box = None
    if mask is not None:
        if mask.shape[:2] != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        box = lesion_box(mask > 0, margin)
    region = image if box is None else image[box.y0 : box.y1, box.x0 : box.x1]
    interpolation = cv2.INTER_AREA if min(region.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interpolation), box
