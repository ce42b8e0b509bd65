"""Keras -> TFLite for each post-training variant, and labels/normalisation embedded in the file."""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Callable, Iterable

import numpy as np

from dermedge.train.tf_env import tensorflow

METADATA_NAME = "dermedge"  # the model-metadata entry holding our JSON (labels, normalisation)


FLOAT_LAYERS = 3  # int8-mixed: how many of the worst-quantized tensors stay in float
DEBUG_IMAGES = 50  # representative images the QuantizationDebugger compares float and int8 on


def convert(model, quantization: str, representative: Callable[[], Iterable] | None = None,
            float_layers: int = FLOAT_LAYERS) -> tuple[bytes, dict]:
    """Convert `model`; returns the .tflite bytes and what the manifest should know about it.

    `quantization` is a variant's setting (`export/formats.py`), a key of QUANTIZERS. Integer models
    take uint8 pixels, so a device feeds camera bytes directly; every variant's output stays float32
    (a dequantize at the end) so all return the same thing.
    """
    if quantization not in QUANTIZERS:
        raise ValueError(f"unknown quantization {quantization!r}; known: {', '.join(QUANTIZERS)}")
    tf = tensorflow()
    if quantization in INTEGER_QUANTIZATIONS:
        model = exact_normalization(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return QUANTIZERS[quantization](tf, converter, representative, float_layers)


def exact_normalization(model):
    """The same model with its input normalisation (the Rescaling layer "normalize", x * s + o)
    computed as (x + o / s) * s, when o / s is a whole number (EfficientNet-Lite: (x - 127) / 128).

    Why: the converter lowers x * s + o to an int8 MUL then ADD, and calibrates the MUL's output
    onto a wider grid than x * s needs (for Lite, steps of 1/85 instead of 1/128), so every pixel
    reaches the stem conv with up to 0.75 grey levels of rounding noise, which the fine-tuned
    stem's BatchNorm amplifies up to 55x. Subtracting first keeps both grids exact (whole numbers
    -127..128, then steps of 1/128): on the validation crops the shipped classifier's int8 top-1
    agreement with float went from 0.920 to 0.964 (docs/experiments.md, *int8 input
    normalisation*). Same function in float; returns `model` itself when there is nothing to do."""
    tf = tensorflow()
    layer = next((layer for layer in model.layers if layer.name == "normalize"
                  and isinstance(layer, tf.keras.layers.Rescaling)), None)
    if layer is None:
        return model
    config = layer.get_config()
    scale, offset = float(config["scale"]), float(config.get("offset", 0.0))
    shift = offset / scale
    if not offset or abs(shift - round(shift)) > 1e-6:
        return model

    class OffsetThenScale(tf.keras.layers.Layer):
        def call(self, inputs):
            return (inputs + shift) * scale

    def clone(source):
        if source is layer:
            return OffsetThenScale(name="normalize")
        return source.__class__.from_config(source.get_config())

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())  # Rescaling holds no weights, so the order is unchanged
    return copy


def _float32(tf, converter, representative, float_layers) -> tuple[bytes, dict]:
    return converter.convert(), {}


def _float16(tf, converter, representative, float_layers) -> tuple[bytes, dict]:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert(), {}


def _dynamic_range(tf, converter, representative, float_layers) -> tuple[bytes, dict]:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert(), {}


def _integer_converter(tf, converter, representative) -> None:
    """Post-training integer quantization, calibrated on `representative`, with uint8 input."""
    if representative is None:
        from dermedge.errors import DermedgeError

        raise DermedgeError("int8 export needs a representative set: pass training images "
                            "(--representative N > 0) or a run folder with split.csv")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.inference_input_type = tf.uint8


def _full_integer(tf, converter, representative, float_layers) -> tuple[bytes, dict]:
    _integer_converter(tf, converter, representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert(), {}


def _mixed_integer(tf, converter, representative, float_layers) -> tuple[bytes, dict]:
    """Full-integer PTQ with the `float_layers` worst tensors (by scaled RMSE) left in float."""
    _integer_converter(tf, converter, representative)
    errors = quantization_errors(converter, representative)
    worst = [r["tensor"] for r in errors[:float_layers]]
    rounded = [{**r, "scaled_rmse": round(r["scaled_rmse"], 4)} for r in errors[:10]]
    return _keep_in_float(tf, converter, representative, worst), {"float_layers": rounded[:float_layers],
                                                                   "worst_int8_layers": rounded}


def _keep_in_float(tf, converter, representative, tensors: list[str]) -> bytes:
    """The integer conversion set up on `converter`, with `tensors` left in float."""
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_debug_dataset(representative),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=tensors))
    return debugger.get_nondebug_quantized_model()


def convert_keeping_in_float(model, representative: Callable[[], Iterable], name_parts: list[str]) -> bytes:
    """Full-integer PTQ of `model` with every tensor whose name holds one of `name_parts` in float:
    for probing which layers cost the agreement (`benchmarks/int8_agreement.py`)."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(exact_normalization(model))
    _integer_converter(tf, converter, representative)
    names = [row["tensor"] for row in quantization_errors(converter, representative)]
    chosen = [name for name in names if any(part in name for part in name_parts)]
    return _keep_in_float(tf, converter, representative, chosen)


# A variant's `quantization` -> how the converter is set up for it.
QUANTIZERS = {"none": _float32, "fp16": _float16, "dynamic": _dynamic_range, "int8": _full_integer,
              "int8-mixed": _mixed_integer}
INTEGER_QUANTIZATIONS = ("int8", "int8-mixed")  # activations on an int8 grid: exact_normalization matters


def _debug_dataset(representative: Callable[[], Iterable]) -> Callable[[], Iterable]:
    """The first DEBUG_IMAGES samples of the representative set, as the debugger wants them."""
    return lambda: itertools.islice(representative(), DEBUG_IMAGES)


def quantization_errors(converter, representative: Callable[[], Iterable]) -> list[dict]:
    """Per-tensor int8 error from TFLite's QuantizationDebugger, worst first.

    The error is the RMSE between float and quantized activations divided by the quantization
    scale (in quantization steps), which compares layers of different ranges fairly.
    """
    tf = tensorflow()
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                         debug_dataset=_debug_dataset(representative))
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    rows = []
    for row in csv.DictReader(dump):
        scale = float(row["scale"] or 0)
        if scale > 0:
            rows.append({"tensor": row["tensor_name"], "op": row["op_name"],
                         "scaled_rmse": float(np.sqrt(float(row["mean_squared_error"])) / scale)})
    return sorted(rows, key=lambda r: -r["scaled_rmse"])


def representative_from(images: np.ndarray) -> Callable[[], Iterable]:
    """A converter-ready generator over 0..255 float images, one at a time.

    The input's int8 range is calibrated from what the images contain; a set whose brightest
    pixel is 239 would clip every brighter camera pixel. One pixel of the first image is set to
    0 and one to 255, so the uint8 input maps 1:1 to pixel values (scale 1, zero point 0)
    without disturbing the ranges of the layers behind it.
    """

    def generate():
        for i, image in enumerate(images):
            sample = image[None].astype(np.float32)
            if i == 0:
                sample[0, 0, 0, :] = 0.0
                sample[0, 0, 1, :] = 255.0
            yield [sample]

    return generate


def add_metadata(tflite: bytes, entries: dict) -> bytes:
    """Embed `entries` as JSON under "dermedge", and the standard TFLite metadata beside it.

    Written with LiteRT's own flatbuffer schema, so any TFLite reader keeps it and
    `read_metadata` (or the bundle manifest) gives labels and normalisation back. The standard
    entry (`tflite_metadata`: normalisation, labels.txt) is what MediaPipe Tasks reads; its label
    file is appended after the flatbuffer, so this is the last step that rewrites the model.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from dermedge.export.tflite_metadata import (LABELS_FILE, STANDARD_METADATA_NAME,
                                                 append_associated_files, standard_metadata)

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    graph = model.subgraphs[0]
    input_is_uint8 = graph.tensors[graph.inputs[0]].type == schema.TensorType.UINT8
    role = entries.get("role", "classifier")
    standard = standard_metadata(role, f"dermedge {role}", f"dermedge skin-lesion {role} ({entries.get('producer', '')})",
                                 input_is_uint8)
    named = {METADATA_NAME: json.dumps(entries, sort_keys=True).encode(), STANDARD_METADATA_NAME: standard}
    model.metadata = model.metadata or []
    existing = {m.name.decode(): m for m in model.metadata}
    for name, data in named.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        if name in existing:  # rewritten in place: writing twice gives the same file, no orphan buffer
            model.buffers[existing[name].buffer] = buffer
            continue
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(tflite) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    content = bytes(builder.Output())
    if role == "classifier":
        content = append_associated_files(content, {LABELS_FILE: "\n".join(entries["labels"]).encode() + b"\n"})
    return content


def read_metadata(tflite: bytes) -> dict | None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(tflite, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode())
    return None
