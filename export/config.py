"""The options of `dermedge export`, in a module that imports nothing heavy (the CLI reads the defaults
at start-up; `export/build.py` runs them)."""

from __future__ import annotations

from dataclasses import dataclass

from dermedge.export.tflite import FLOAT_LAYERS


@dataclass
class ExportConfig:
    segmenter: str
    classifier: str
    out: str = "bundle"
    variants: str | None = None
    split: str | None = None
    data_root: str | None = None
    representative: int = 200
    validation_images: int = 0
    sparsity: float = 0.5
    fine_tune_epochs: int = 2
    qat_epochs: int = 2
    float_layers: int = FLOAT_LAYERS  # int8-mixed: how many of the worst-quantized tensors stay in float
    bias_correction: bool = True  # int8 (and pruned-int8): cancel the mean weight-rounding error first
    fine_tune_images: int = 0
    batch_size: int = 32
    agreement_floor: float = 0.9
    distill: bool = True  # pruned/QAT classifier fine-tunes to the float model's probabilities, not labels
    seed: int = 0
