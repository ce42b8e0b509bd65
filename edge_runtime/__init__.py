"""dermedge's on-device side: segment -> crop -> classify with no TensorFlow.

Everything here imports only numpy and OpenCV (and the LiteRT interpreter where a model runs),
so that this package alone can go onto a Raspberry Pi or phone.
"""

from edge_runtime.bundle import Bundle, BundleError, load_bundle
from edge_runtime.image_io import ImageError, read_image
from edge_runtime.labels import HAM10000_CLASSES, MALIGNANT_CLASSES
from edge_runtime.pipeline import Pipeline, PipelineOptions, Result
from edge_runtime.preprocess import CropBox, crop_to_lesion, lesion_box
from edge_runtime.quality import QualityThresholds

__all__ = [
    "Pipeline",
    "PipelineOptions",
    "QualityThresholds",
    "Result",
    "read_image",
    "ImageError",
    "Bundle",
    "BundleError",
    "load_bundle",
    "HAM10000_CLASSES",
    "MALIGNANT_CLASSES",
    "CropBox",
    "crop_to_lesion",
    "lesion_box",
]
