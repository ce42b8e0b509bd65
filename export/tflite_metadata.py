"""The standard TFLite model metadata (`TFLITE_METADATA`) that MediaPipe Tasks and other TFLite
clients read: input normalisation, the label file, the segmenter's activation.

Written straight from the published schema (MediaPipe's `metadata_schema.fbs`, file identifier
"M001") with the `flatbuffers` package, because MediaPipe's own writers cannot be installed beside
the export stack: from mediapipe 0.10.3x they fail to import (`_pywrap_metadata_version` is missing
from the wheels), and 0.10.21 needs numpy < 2 and protobuf < 5. Field slots follow the schema's
declaration order; a union takes two slots (its type, then its value). The associated files go in
a zip archive appended to the model, as MediaPipe's populator does, so this step must come after
every rewrite of the flatbuffer.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

STANDARD_METADATA_NAME = "TFLITE_METADATA"
LABELS_FILE = "labels.txt"
_SEGMENTER_METADATA_NAME = "SEGMENTER_METADATA"

# Union and enum values of metadata_schema.fbs.
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
_RGB, _GRAYSCALE = 1, 2  # ColorSpaceType
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


def _tables(b, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats(b, values: list[float]) -> int:
    return b.CreateNumpyVector(np.asarray(values, np.float32))


def _table(b, fields: list[tuple[int, str, object]]) -> int:
    """One table from (slot, kind, value); kind is "offset", "byte" or "int"."""
    b.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
    for slot, kind, value in fields:
        if kind == "offset":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "byte":
            b.PrependUint8Slot(slot, value, 0)
        else:
            b.PrependInt32Slot(slot, value, 0)
    return b.EndObject()


def _tensor(b, name: str, description: str, color_space: int | None, mean_std: tuple | None,
            value_range: tuple[float, float], label_file: bool, mask_range: bool = False) -> int:
    """TensorMetadata: name 0, description 1, content 3, process_units 4, stats 5, associated_files 6."""
    name_o, description_o = b.CreateString(name), b.CreateString(description)
    if color_space is None:
        properties_type, properties = _FEATURE_PROPERTIES, _table(b, [])
    else:
        properties_type, properties = _IMAGE_PROPERTIES, _table(b, [(0, "byte", color_space)])
    content_fields = [(0, "byte", properties_type), (1, "offset", properties)]
    if mask_range:  # Content.range: the mask's height and width are dimensions 1 and 2
        content_fields.append((2, "offset", _table(b, [(0, "int", 1), (1, "int", 2)])))
    content = _table(b, content_fields)
    fields = [(0, "offset", name_o), (1, "offset", description_o), (3, "offset", content)]
    if mean_std is not None:
        options = _table(b, [(0, "offset", _floats(b, [mean_std[0]])), (1, "offset", _floats(b, [mean_std[1]]))])
        unit = _table(b, [(0, "byte", _NORMALIZATION_OPTIONS), (1, "offset", options)])
        fields.append((4, "offset", _tables(b, [unit])))
    low, high = value_range
    fields.append((5, "offset", _table(b, [(0, "offset", _floats(b, [high])), (1, "offset", _floats(b, [low]))])))
    if label_file:
        file = _table(b, [(0, "offset", b.CreateString(LABELS_FILE)),
                          (1, "offset", b.CreateString("Class names, one per line, in output order.")),
                          (2, "byte", _TENSOR_AXIS_LABELS)])
        fields.append((6, "offset", _tables(b, [file])))
    return _table(b, fields)


def _segmenter_options() -> bytes:
    """mediapipe.tasks ImageSegmenterOptions ("V001"): activation NONE, the model ends in a sigmoid."""
    import flatbuffers

    b = flatbuffers.Builder(64)
    b.Finish(_table(b, [(0, "byte", 0)]), file_identifier=b"V001")
    return bytes(b.Output())


def standard_metadata(role: str, name: str, description: str, input_is_uint8: bool) -> bytes:
    """The ModelMetadata flatbuffer for a dermedge classifier or segmenter.

    The models take RGB 0..255 and normalise inside, so the input's normalisation is mean 0, std 1
    (MediaPipe refuses a float input without one); uint8 inputs are fed as they are.
    """
    import flatbuffers

    b = flatbuffers.Builder(1024)
    image = _tensor(b, "image", "RGB image, 0..255; normalised inside the model.", _RGB,
                    None if input_is_uint8 else (0.0, 1.0), (0.0, 255.0), label_file=False)
    if role == "classifier":
        output = _tensor(b, "probability", "Softmax over the classes of labels.txt (uncalibrated).",
                         None, None, (0.0, 1.0), label_file=True)
        custom = None
    else:
        output = _tensor(b, "segmentation_masks", "Lesion probability per pixel; threshold 0.5.",
                         _GRAYSCALE, None, (0.0, 1.0), label_file=False, mask_range=True)
        data = _segmenter_options()
        b.StartVector(1, len(data), 16)  # CustomMetadata.data is force_align: 16
        b.head -= len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        data_o = b.EndVector()
        custom = _table(b, [(0, "offset", b.CreateString(_SEGMENTER_METADATA_NAME)), (1, "offset", data_o)])
    subgraph_fields = [(0, "offset", b.CreateString(name)),
                       (2, "offset", _tables(b, [image])), (3, "offset", _tables(b, [output]))]
    if custom is not None:
        subgraph_fields.append((9, "offset", _tables(b, [custom])))
    subgraph = _table(b, subgraph_fields)
    # The lowest parser that reads these fields: custom metadata needs 1.5.0, Content.range 1.2.1.
    version = "1.5.0" if custom is not None else "1.0.0"
    model = _table(b, [(0, "offset", b.CreateString(name)), (1, "offset", b.CreateString(description)),
                       (3, "offset", _tables(b, [subgraph])), (5, "offset", b.CreateString("Apache-2.0")),
                       (7, "offset", b.CreateString(version))])
    b.Finish(model, file_identifier=b"M001")
    return bytes(b.Output())


def tflite_file_record(root, path) -> dict:
    """The manifest record of a written .tflite: path, bytes, sha256 and gzip -9 size."""
    import gzip

    from edge_runtime.bundle import file_record

    return {**file_record(root, path), "gzip_bytes": len(gzip.compress(path.read_bytes(), 9))}


def append_associated_files(tflite: bytes, files: dict[str, bytes]) -> bytes:
    """The model followed by a zip of `files` (stored, uncompressed), as TFLite clients expect."""
    stream = io.BytesIO(tflite)
    stream.seek(0, io.SEEK_END)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files.items():  # a fixed date: the same model gives the same bytes
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return stream.getvalue()


def associated_files(tflite: bytes) -> dict[str, bytes]:
    """The files appended to a model ({} when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}
