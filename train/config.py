"""The options of the two training commands, in a module that imports nothing heavy: the CLI reads
their defaults when it starts, and `train/segment.py` and `train/classify.py` run them."""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.preprocess import DEFAULT_CROP_MARGIN


@dataclass
class SegmentConfig:
    images: str
    labels: str | None = None
    masks: str | None = None
    out: str = "runs/segment"
    input_size: int = 128
    base_filters: int = 8
    depth: int = 4
    max_filters: int = 64
    decoder: str = "unet"
    encoder: str = "none"  # "none" (scratch U-Net) or a backbone of train.backbones (pretrained encoder)
    encoder_weights: str | None = None  # a local file, "imagenet" (the backbone's own source) or None
    skip_projection: bool = False  # 1x1 convs narrow a pretrained encoder's skips to the decoder's width
    warmup_epochs: int = 0  # a pretrained encoder stays frozen for these first epochs
    augment: str = "basic"  # "basic" (flips, zoom, light colour) or "device" (other dermatoscopes too)
    negatives: float = 0.0  # lesion-free images (empty masks) added to training, per training photo
    init_from: str | None = None  # continue from a segmenter.keras of an earlier run (same split)
    epochs: int = 40
    batch_size: int = 16
    learning_rate: float = 2e-3
    patience: int = 8
    average_last: int = 0  # >0: no early stopping, no rate cuts; ship the mean weights of the last N epochs
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    strategy: str = "default"
    logical_cpus: int = 0
    limit: int = 0  # use only the first N samples (quick experiments, tests)
    verbose: int = 2



@dataclass
class ClassifyConfig:
    images: str
    labels: str | None = None
    masks: str | None = None
    out: str = "runs/classify"
    backbone: str = "mobilenetv2"
    backbone_weights: str | None = None  # a local file, "imagenet" (the backbone's own source) or None
    input_size: int = 224
    alpha: float = 0.35
    crop_margin: float = DEFAULT_CROP_MARGIN
    crop_jitter: float = 0.0
    colour_constancy: str = "none"  # "shades-of-grey": crops corrected by the photo's illuminant
    imbalance: str = "auto"
    head_epochs: int = 3
    epochs: int = 30
    batch_size: int = 32
    head_learning_rate: float = 1e-3
    learning_rate: float = 3e-4
    patience: int = 8
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    split_seed: int | None = None  # None: `seed`; set it to retrain on the same split with another seed
    strategy: str = "default"
    logical_cpus: int = 0
    limit: int = 0
    init_from: str | None = None
    bn_momentum: float | None = None
    average_last: int = 0  # >0: no early stopping; ship the mean weights of the last N fine-tune epochs
    teachers: tuple[str, ...] = ()  # teacher runs' folders (their train_predictions.npz, averaged): distil
    distill_weight: float = 0.5  # share of the teacher's softened probabilities in each target
    distill_temperature: float = 2.0
    label_smoothing: float = 0.0  # share of each one-hot target spread evenly over the classes
    mixup: float = 0.0  # >0: blend training images and targets pairwise, lambda ~ Beta(mixup, mixup)
    free_rotation: bool = False  # rotate training crops by any angle, not only quarter turns
    malignant_weight: float = 0.0  # >0: add this x the binary cross-entropy of the malignant share
    verbose: int = 2
