"""From the U-Net's probability map to one clean lesion mask.

A dermoscopy image shows one lesion: keeping the largest connected component drops specks of
hair and shadow that would otherwise stretch the crop box, and filling holes keeps regression
areas (pale centres) inside the lesion the classifier sees.
"""

from __future__ import annotations

import cv2
import numpy as np


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground component of a boolean mask (empty stays empty)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions enclosed by the foreground (those not reachable from the border)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    outside = padded.copy()
    flood = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, flood, (0, 0), 1)
    holes = outside[1:-1, 1:-1] == 0
    return mask.astype(bool) | holes


def clean_mask(probability: np.ndarray, size: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """Probability map at model resolution -> boolean lesion mask at `size` = (height, width).

    The map is resized (bilinear) before thresholding, as export validation does, so the mask
    edge is placed at image resolution rather than in blocky model pixels.
    """
    height, width = size
    if probability.shape[:2] != (height, width):
        probability = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    mask = largest_component(probability > threshold)
    return fill_holes(mask) if mask.any() else mask
