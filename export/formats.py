"""The one table of export variants: what each is, how it is made, what it is compared with.

`dermedge export` converts by it, `pack` groups by it, the CLI help lists it, and the benchmark and
the bundle tables read their reference rows from it. It imports nothing heavy, so `--help` can read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    format: str  # "tflite" or "coreml": which converter makes it (export/tflite.py, export/coreml.py)
    quantization: str  # the converter's setting: a key of tflite.QUANTIZERS or coreml.WEIGHT_COMPRESSION
    transform: str | None  # None, "prune" or "qat": a Keras-level step before conversion
    description: str
    # The variant this one changes one thing of: what pruning, QAT or float layers bought is measured
    # against it (sizes, agreement, latency). None for the float references.
    baseline: str | None = None

    @property
    def suffix(self) -> str:
        return ".tflite" if self.format == "tflite" else ".mlpackage"

    @property
    def bias_corrected(self) -> bool:
        """Full-integer post-training quantization of every layer: its weight rounding is
        bias-corrected first (export/bias_correction.py). Not int8-mixed, whose float layers would
        carry a correction for rounding they never get, nor QAT, whose training already saw it."""
        return self.quantization == "int8" and self.transform != "qat"

    @property
    def integer(self) -> bool:
        """Full-integer activations (uint8 input): needs a representative set, runs int8 kernels."""
        return self.quantization in INTEGER_QUANTIZATIONS


INTEGER_QUANTIZATIONS = ("int8", "int8-mixed")  # the TFLite settings with integer activations
MIXED_QUANTIZATION = "int8-mixed"  # integer, with the worst-quantized tensors kept in float

VARIANTS: tuple[Variant, ...] = (
    Variant("fp32", "tflite", "none", None, "float32 reference conversion"),
    Variant("fp16", "tflite", "fp16", None, "float16 weights, float compute", baseline="fp32"),
    Variant("dynamic", "tflite", "dynamic", None, "int8 weights, float activations (dynamic range)",
            baseline="fp32"),
    Variant("int8", "tflite", "int8", None,
            "full-integer post-training quantization, uint8 input (scale 1, zero point 0: camera bytes go "
            "straight in), --representative training images (default 200) calibrate, weight rounding "
            "bias-corrected on them (--no-bias-correction: off)", baseline="fp32"),
    Variant("int8-mixed", "tflite", MIXED_QUANTIZATION, None,
            "int8, except the --float-layers (default 3) tensors with the largest quantization error "
            "(TFLite QuantizationDebugger, RMSE in quantization steps, on 50 calibration images) kept in "
            "float; float32 input", baseline="int8"),
    Variant("pruned-int8", "tflite", "int8", "prune",
            "prune_low_magnitude, polynomial schedule to --sparsity (default 50%; Conv2D/Dense with ≥1024 "
            "weights), --fine-tune-epochs (default 2; the classifier distilled from the float model), "
            "strip_pruning, full-integer, bias-corrected as int8", baseline="int8"),
    Variant("qat-int8", "tflite", "int8", "qat",
            "tfmot quantization-aware training with activation ranges calibrated first, --qat-epochs "
            "(default 2; the classifier distilled from the float model), full-integer", baseline="int8"),
    Variant("coreml", "coreml", "none", None,
            "Core ML mlprogram (.mlpackage) with image input, class labels and metadata, float16 compute"),
    Variant("coreml-int8", "coreml", "linear8", None, "Core ML, 8-bit linear-quantized weights", baseline="coreml"),
    Variant("coreml-palette6", "coreml", "palette6", None, "Core ML, 6-bit palettized weights (k-means)",
            baseline="coreml"),
)
VARIANTS_BY_NAME = {v.name: v for v in VARIANTS}
FLOAT_REFERENCE = "fp32"  # the float export every speed-up and TFLite agreement is measured against
PREFERRED_DEFAULT = "int8"  # what a new bundle runs unless `pack --default-variant` or calibration says otherwise
GROUPS = {"all": [v.name for v in VARIANTS],
          "tflite": [v.name for v in VARIANTS if v.format == "tflite"],
          "coreml": [v.name for v in VARIANTS if v.format == "coreml"]}


def names_help() -> str:
    """The variant names and groups, for option help texts."""
    return ", ".join(VARIANTS_BY_NAME) + "; or a group: " + ", ".join(GROUPS)


def parse_variant_list(text: str | None) -> list[str] | None:
    """`--variants int8,coreml` -> names, groups (all, tflite, coreml) expanded, duplicates dropped;
    None or blank -> None ("the command's default"). Names are not checked here: a bundle may be asked
    for rows that are not exports (the benchmark's keras rows)."""
    if text is None or not text.strip():
        return None
    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        for name in GROUPS.get(item, [item] if item else []):
            if name not in names:
                names.append(name)
    return names


def select_variants(text: str | None) -> list[Variant]:
    """The variants `--variants` names (None: every variant), in table order; unknown names fail."""
    from dermedge.errors import DermedgeError

    wanted = parse_variant_list(text)
    if wanted is None:
        return list(VARIANTS)
    unknown = [n for n in wanted if n not in VARIANTS_BY_NAME]
    if unknown:
        raise DermedgeError(f"unknown variant(s) {', '.join(unknown)}; choose from {names_help()}")
    return [v for v in VARIANTS if v.name in wanted]


def pick_default_variant(names, preferred: str | None = None) -> str:
    """`preferred` if among `names`, else PREFERRED_DEFAULT, else the first name."""
    names = list(names)
    return next(v for v in (preferred, PREFERRED_DEFAULT, names[0]) if v in names)


def variants_markdown() -> str:
    """The table as the README shows it (a test keeps the two equal)."""
    lines = ["| variant | format | what | baseline |", "| --- | --- | --- | --- |"]
    for v in VARIANTS:
        lines.append(f"| `{v.name}` | {v.format} | {v.description} | {f'`{v.baseline}`' if v.baseline else '–'} |")
    return "\n".join(lines)
