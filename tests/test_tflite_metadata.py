"""Standard TFLite metadata (TFLITE_METADATA + labels.txt) on the shipped models: the runtime's
outputs unchanged, and MediaPipe Tasks reading labels and masks where mediapipe is installed."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.bundle import DEFAULT_BUNDLE
from edge_runtime.interpreter import TFLiteModel

pytest.importorskip("flatbuffers")
from dermedge.export.tflite import add_metadata, read_metadata  # noqa: E402
from dermedge.export.tflite_metadata import (LABELS_FILE, STANDARD_METADATA_NAME,  # noqa: E402
                                             associated_files)

MODELS = sorted(DEFAULT_BUNDLE.glob("*.tflite"))


def _images(size: int, n: int = 6) -> np.ndarray:
    """Smooth blobs on skin-like backgrounds: not noise, so the classes differ between images."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.35)
        blob = (((xx - cx) ** 2 + (yy - cy) ** 2) < r ** 2)[..., None]
        skin, lesion = rng.uniform(120, 230, 3), rng.uniform(20, 140, 3)
        out.append(np.where(blob, lesion, skin) + rng.normal(0, 6, (size, size, 3)))
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=[p.name for p in MODELS])
def standard(request, tmp_path_factory):
    """(role, original path, the same model with standard metadata written to a temp file)."""
    original = DEFAULT_BUNDLE / request.param
    entries = read_metadata(original.read_bytes())
    path = tmp_path_factory.mktemp("md") / request.param
    path.write_bytes(add_metadata(original.read_bytes(), entries))
    return entries, original, path


def test_standard_metadata_keeps_outputs_and_dermedge_entry(standard):
    entries, original, path = standard
    content = path.read_bytes()
    assert read_metadata(content) == entries
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    names = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    assert STANDARD_METADATA_NAME in names
    assert bytes(model.Buffers(names[STANDARD_METADATA_NAME]).DataAsNumpy())[4:8] == b"M001"
    files = associated_files(content)
    if entries["role"] == "classifier":
        assert files[LABELS_FILE].decode().split() == entries["labels"]
    else:
        assert files == {}
    before, after = TFLiteModel(original), TFLiteModel(path)
    images = _images(before.input_size[0])
    np.testing.assert_array_equal(before.run(images), after.run(images))


def test_rewriting_metadata_keeps_one_entry_each(standard):
    entries, _, path = standard
    twice = add_metadata(path.read_bytes(), entries)
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(twice, 0)
    names = [model.Metadata(i).Name().decode() for i in range(model.MetadataLength())]
    assert sorted(names).count(STANDARD_METADATA_NAME) == 1 and names.count("dermedge") == 1
    assert len(associated_files(twice)) == (1 if entries["role"] == "classifier" else 0)


def test_mediapipe_reads_labels_and_masks(standard):
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    entries, _, path = standard
    runtime = TFLiteModel(path)
    images = _images(runtime.input_size[0])
    expected = runtime.run(images)
    if entries["role"] == "classifier":
        options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=7)
        with vision.ImageClassifier.create_from_options(options) as task:
            for image, probs in zip(images, expected):
                result = task.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
                categories = result.classifications[0].categories
                assert sorted(c.category_name for c in categories) == sorted(entries["labels"])
                assert categories[0].category_name == entries["labels"][int(np.argmax(probs))]
                assert categories[0].score == pytest.approx(float(probs.max()), abs=1e-5)
    else:
        options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               output_confidence_masks=True, output_category_mask=False)
        with vision.ImageSegmenter.create_from_options(options) as task:
            for image, probs in zip(images, expected):
                result = task.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
                mask = result.confidence_masks[0].numpy_view().squeeze()
                np.testing.assert_allclose(mask, probs[..., 0], atol=1e-5)
