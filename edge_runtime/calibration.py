"""Turning the classifier's softmax into probabilities a screener can read at face value.

Temperature scaling (Guo et al. 2017) divides the logits by one number T fitted on held-out data.
The exported classifiers end in softmax, so the runtime sees probabilities, not logits; since
log p = logits - logsumexp(logits), softmax(log p / T) equals softmax(logits / T) exactly. The
order of classes never changes, so accuracy does not either: only the confidence does.
"""

from __future__ import annotations

import numpy as np

PROBABILITY_FLOOR = 1e-7  # int8 outputs reach exact zeros; log(0) would make every T meaningless


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (..., classes) -> the same, rescaled by `temperature` (1.0: unchanged)."""
    probabilities = np.asarray(probabilities, np.float64)
    if temperature == 1.0:
        return probabilities.astype(np.float32)
    logits = np.log(np.clip(probabilities, PROBABILITY_FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)
