"""The options of `dermedge benchmark`, apart from its machinery so the CLI reads the defaults at
start-up without importing it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BenchmarkConfig:
    bundle: Path | None = None  # None: the bundle installed with dermedge
    variants: list[str] | None = None  # None: all
    threads: tuple[int, ...] = (1,)
    runs: int = 200
    warmup: int = 20
    images: Path | None = None
    masks: Path | None = None
    labels: Path | None = None
    split: str | None = None
    limit: int = 0  # labelled images scored per variant (0: all)
    keras: bool = True  # add the Keras float row when TensorFlow and the .keras files are there
    keras_segmenter: Path = Path("runs/segment/segmenter.keras")
    keras_classifier: Path = Path("runs/classify/classifier.keras")
    latency_images: int = 16
    tta: list[str] = field(default_factory=list)  # variants also run with test-time augmentation
    memory: bool = True  # child-process load time and peak memory
