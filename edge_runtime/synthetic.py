"""Procedurally drawn lesions: an ellipse of pigment on skin-coloured noise, with its mask.

Used by the tests (a dataset in every layout, drawn on the fly) and by `dermedge predict --example`,
so a fresh install can show the whole pipeline with no data at hand. These are not dermoscopy.
"""

from __future__ import annotations

import cv2
import numpy as np

# One pigment per class so a classifier can learn the synthetic task in one short epoch.
_PIGMENTS = [(120, 60, 50), (200, 120, 140), (150, 110, 70), (170, 120, 90),
             (40, 25, 30), (110, 70, 45), (170, 30, 60)]


def draw_lesion(
    rng: np.random.Generator, width: int = 200, height: int = 150, class_index: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 image and its boolean lesion mask."""
    skin = np.array([225, 180, 150], dtype=np.float32) + rng.normal(0, 6, 3)
    image = np.clip(skin + rng.normal(0, 9, (height, width, 3)), 0, 255).astype(np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 0)
    mask = np.zeros((height, width), np.uint8)
    center = (int(width * rng.uniform(0.35, 0.65)), int(height * rng.uniform(0.35, 0.65)))
    axes = (int(width * rng.uniform(0.12, 0.3)), int(height * rng.uniform(0.12, 0.3)))
    cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    pigment = np.array(_PIGMENTS[class_index % len(_PIGMENTS)], np.float32) + rng.normal(0, 8, 3)
    texture = rng.normal(0, 12, (height, width, 1))
    lesion = np.clip(pigment + texture, 0, 255)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (7, 7), 0)[..., None]
    image = (image * (1 - alpha) + lesion * alpha).astype(np.uint8)
    return image, mask > 0
