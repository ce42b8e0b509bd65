"""Drawing a Result onto its image: mask contour, crop box, label and confidence."""

from __future__ import annotations

import cv2
import numpy as np

from edge_runtime.pipeline import Result

MALIGNANT_COLOUR = (230, 40, 40)  # RGB
BENIGN_COLOUR = (40, 200, 80)
BOX_COLOUR = (255, 220, 0)


def draw_overlay(image: np.ndarray, result: Result) -> np.ndarray:
    """An RGB copy of `image` annotated with `result` (line widths scale with the image)."""
    canvas = image.copy()
    scale = max(canvas.shape[:2]) / 400.0
    thickness = max(1, int(round(2 * scale)))
    colour = MALIGNANT_COLOUR if result.malignant else BENIGN_COLOUR
    if result.lesion_found:
        contours, _ = cv2.findContours(result.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, colour, thickness)
    if result.box:
        x0, y0, x1, y1 = result.box
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOUR, max(1, thickness // 2))
    text = f"{result.label} {result.confidence:.0%}  malignant {result.malignant_probability:.0%}"
    if not result.lesion_found:
        text += "  (no lesion found: whole image)"
    return draw_banner(canvas, text, colour)


def draw_banner(canvas: np.ndarray, text: str, colour: tuple[int, int, int], line: int = 0) -> np.ndarray:
    """Write one line of text on a black band at the top of `canvas` (in place; `line` 1 is the
    band below the first), sized to the image like the overlay's lines."""
    font_scale = 0.45 * max(max(canvas.shape[:2]) / 400.0, 0.6)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    top = line * (h + base + 8)
    cv2.rectangle(canvas, (0, top), (min(w + 8, canvas.shape[1]), top + h + base + 8), (0, 0, 0), -1)
    cv2.putText(canvas, text, (4, top + h + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, 1, cv2.LINE_AA)
    return canvas


def write_rgb(path, image: np.ndarray) -> None:
    """Write an RGB image (OpenCV writes BGR)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
