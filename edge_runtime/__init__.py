"""dermedge's on-device side: segment -> crop -> classify with no TensorFlow.

Everything here imports only numpy and OpenCV (and the LiteRT interpreter where a model runs),
so that this package alone can go onto a Raspberry Pi or phone.
"""

from edge_runtime.labels import HAM10000_CLASSES, MALIGNANT_CLASSES, is_malignant
from edge_runtime.preprocess import CropBox, crop_to_lesion, lesion_box

__all__ = [
    "HAM10000_CLASSES",
    "MALIGNANT_CLASSES",
    "is_malignant",
    "CropBox",
    "crop_to_lesion",
    "lesion_box",
]
