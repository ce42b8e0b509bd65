"""The one table of export variants. The CLI, the bundle, `info` and the benchmark read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    format: str  # "tflite" or "coreml"
    quantization: str  # tflite: none/fp16/dynamic/int8/int8-mixed; coreml: none/linear8/palette6
    transform: str | None  # None, "prune" or "qat": a Keras-level step before conversion
    description: str

    @property
    def suffix(self) -> str:
        return ".tflite" if self.format == "tflite" else ".mlpackage"


VARIANTS: tuple[Variant, ...] = (
    Variant("fp32", "tflite", "none", None, "float32 reference conversion"),
    Variant("fp16", "tflite", "fp16", None, "float16 weights, float compute"),
    Variant("dynamic", "tflite", "dynamic", None, "int8 weights, float activations (dynamic range)"),
    Variant("int8", "tflite", "int8", None, "full-integer post-training quantization, uint8 input"),
    Variant("int8-mixed", "tflite", "int8-mixed", None,
            "int8, except the tensors with the largest quantization error (QuantizationDebugger; "
            "--float-layers, default 3) kept in float"),
    Variant("pruned-int8", "tflite", "int8", "prune",
            "magnitude-pruned (polynomial schedule), fine-tuned, stripped, then full-integer"),
    Variant("qat-int8", "tflite", "int8", "qat", "quantization-aware fine-tuning, then full-integer"),
    Variant("coreml", "coreml", "none", None, "Core ML mlprogram, float16 compute"),
    Variant("coreml-int8", "coreml", "linear8", None, "Core ML, 8-bit linear-quantized weights"),
    Variant("coreml-palette6", "coreml", "palette6", None, "Core ML, 6-bit palettized weights"),
)
VARIANTS_BY_NAME = {v.name: v for v in VARIANTS}


def select_variants(names: str | None) -> list[Variant]:
    """Parse `--variants fp32,int8` (None or "all" means every variant), in table order."""
    from dermedge.errors import DermedgeError

    if not names or names == "all":
        return list(VARIANTS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in VARIANTS_BY_NAME]
    if unknown:
        raise DermedgeError(f"unknown variant(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(VARIANTS_BY_NAME)}")
    return [v for v in VARIANTS if v.name in wanted]
