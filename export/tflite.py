"""Keras -> TFLite for each post-training variant, and labels/normalisation embedded in the file."""

from __future__ import annotations

import json
from typing import Callable, Iterable

import numpy as np

from train.tf_env import tensorflow

METADATA_NAME = "dermedge"  # the model-metadata entry holding our JSON (labels, normalisation)


def convert(model, quantization: str, representative: Callable[[], Iterable] | None = None) -> bytes:
    """`quantization` is "none" (fp32), "fp16", "dynamic" or "int8" (full integer, uint8 input).

    Full-integer models take uint8 pixels, so a device feeds camera bytes directly; their
    output stays float32 (a dequantize at the end) so every variant returns the same thing.
    """
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if representative is None:
            from dermedge.errors import DermedgeError

            raise DermedgeError("int8 export needs a representative set: pass training images "
                                "(--representative N > 0) or a run folder with split.csv")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    elif quantization != "none":
        raise ValueError(f"unknown quantization {quantization!r}")
    return converter.convert()


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
    """Embed `entries` as JSON in the model's metadata table under "dermedge".

    Written with LiteRT's own flatbuffer schema, so any TFLite reader keeps it and
    `read_metadata` (or the bundle manifest) gives labels and normalisation back.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(entries, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = METADATA_NAME
    metadata.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()] + [metadata]
    builder = flatbuffers.Builder(len(tflite) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(tflite: bytes) -> dict | None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(tflite, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode())
    return None
