"""Keras -> Core ML (.mlpackage, mlprogram) with image input, labels and metadata, plus
8-bit linear and palettized weight variants. Core ML predicts only on macOS: on Linux an export
is validated by reloading its spec and checking inputs, outputs and labels."""

from __future__ import annotations

from pathlib import Path

from dermedge import __version__
from dermedge.errors import DermedgeError, missing_extra

LICENCE = "Code Apache-2.0; weights trained on HAM10000 (CC BY-NC-SA 4.0): non-commercial use"


def _coremltools():
    try:
        import coremltools as ct
    except ImportError as exc:
        raise missing_extra("coreml", "coremltools") from exc
    return ct


def _linear8(mlmodel):
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

    return linear_quantize_weights(mlmodel, OptimizationConfig(
        global_config=OpLinearQuantizerConfig(mode="linear_symmetric")))


def _palette6(mlmodel):
    from coremltools.optimize.coreml import OpPalettizerConfig, OptimizationConfig, palettize_weights

    return palettize_weights(mlmodel, OptimizationConfig(global_config=OpPalettizerConfig(mode="kmeans", nbits=6)))


# A Core ML variant's `quantization` (export/formats.py) -> its weight compression (None: float16 as converted).
WEIGHT_COMPRESSION = {"none": None, "linear8": _linear8, "palette6": _palette6}


def convert(model, role: str, labels: tuple[str, ...], quantization: str = "none"):
    """`quantization`: a key of WEIGHT_COMPRESSION."""
    if quantization not in WEIGHT_COMPRESSION:
        raise ValueError(f"unknown Core ML quantization {quantization!r}; known: {', '.join(WEIGHT_COMPRESSION)}")
    ct = _coremltools()
    height, width = model.input_shape[1:3]
    # The model normalises its own 0..255 input, so the image input passes pixels unscaled.
    image = ct.ImageType(name="image", shape=(1, height, width, 3), scale=1.0, bias=[0.0, 0.0, 0.0],
                         color_layout=ct.colorlayout.RGB)
    kwargs = {"classifier_config": ct.ClassifierConfig(list(labels))} if role == "classifier" else {}
    try:
        mlmodel = ct.convert(model, convert_to="mlprogram", inputs=[image],
                             minimum_deployment_target=ct.target.iOS16, **kwargs)
    except Exception as exc:
        raise DermedgeError(f"Core ML conversion of the {role} failed: {str(exc).splitlines()[0]}") from exc
    compress = WEIGHT_COMPRESSION[quantization]
    if compress is not None:
        mlmodel = compress(mlmodel)
    mlmodel.user_defined_metadata["labels"] = ",".join(labels)
    mlmodel.author = "dermedge"
    mlmodel.license = LICENCE
    mlmodel.version = __version__
    mlmodel.short_description = (
        f"dermedge {role}: " + ("lesion probability mask from RGB 0..255" if role == "segmenter"
                                else f"HAM10000 diagnosis ({', '.join(labels)}) of a lesion crop")
    )
    return mlmodel


def check_spec(path: Path, role: str, labels: tuple[str, ...], input_size: tuple[int, int]) -> dict:
    """Reload a saved .mlpackage's spec (no prediction needed) and check it is what we meant."""
    ct = _coremltools()
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    (inp,) = spec.description.input
    image = inp.type.imageType
    problems = []
    if (image.height, image.width) != tuple(input_size):
        problems.append(f"input is {image.height}x{image.width}, expected {input_size}")
    if role == "classifier":
        outputs = [o.name for o in spec.description.output]
        if spec.description.predictedFeatureName != "classLabel" or "classLabel_probs" not in outputs:
            problems.append(f"classifier outputs are {outputs}")
        found = _class_labels(spec)
        if found != tuple(labels):
            problems.append(f"class labels are {found}, expected {labels}")
    if spec.description.metadata.author != "dermedge":
        problems.append("metadata author missing")
    if problems:
        raise DermedgeError(f"Core ML {role} {path.name}: " + "; ".join(problems))
    return {"input": inp.name, "outputs": [o.name for o in spec.description.output],
            "spec_checked": True, "predicted": False}


def _class_labels(spec) -> tuple[str, ...]:
    """The labels of an mlprogram classifier: the string constant fed to its `classify` op."""
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                if op.type == "classify":
                    (argument,) = op.inputs["classes"].arguments
                    return tuple(label for item in argument.value.immediateValue.list.values
                                 for label in item.immediateValue.tensor.strings.values)
    return ()
