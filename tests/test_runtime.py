"""The edge pipeline on a tiny exported bundle: results, equality with tf.lite, masks, bundles."""

import json
import zipfile

import cv2
import numpy as np
import pytest

from edge_runtime.bundle import BundleError, load_bundle
from edge_runtime.pipeline import Pipeline
from edge_runtime.postprocess import clean_mask, fill_holes, largest_component
from edge_runtime.preprocess import crop_to_lesion
from edge_runtime.synthetic import draw_lesion

pytest.importorskip("tensorflow")  # the tiny bundle is exported by the tests themselves


@pytest.fixture(scope="module")
def image():
    return draw_lesion(np.random.default_rng(3), 96, 72, class_index=4)[0]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_result_is_consistent(tiny_bundle, image, variant):
    pipeline = Pipeline.load(tiny_bundle, variant, num_threads=1)
    result = pipeline.predict(image)
    probs = np.array(list(result.probabilities.values()))
    assert abs(probs.sum() - 1) < 0.02
    assert result.label == max(result.probabilities, key=result.probabilities.get)
    expected = sum(result.probabilities[k] for k in ("mel", "bcc", "akiec"))
    assert result.malignant_probability == pytest.approx(expected, abs=1e-6)
    assert result.malignant == (expected >= result.malignant_threshold)
    assert result.mask.shape == image.shape[:2] and result.mask.dtype == bool
    assert result.lesion_area_fraction == pytest.approx(result.mask.mean())
    assert set(result.latency_ms) == {"preprocess", "segment", "crop", "classify", "total"}
    assert pipeline.backend == "ai_edge_litert"
    json.dumps(result.to_dict())  # serialisable as it is


def test_int8_pipeline_equals_tf_lite(tiny_bundle, image):
    """Same bytes in, same numbers out: the runtime adds nothing to what tf.lite computes."""
    import tensorflow as tf

    pipeline = Pipeline.load(tiny_bundle, "int8")
    bundle = load_bundle(tiny_bundle)

    def tf_lite(model, x):
        interpreter = tf.lite.Interpreter(model_content=bundle.read("int8", model))
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.set_tensor(inp["index"], x[None])
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])[0]

    size = pipeline.segmenter.input_size
    small = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(pipeline.segment(image), tf_lite("segmenter", small)[..., 0])
    result = pipeline.predict(image)
    # The tiny classifier was trained on shades-of-grey crops: the export recorded it, the runtime applies it.
    assert pipeline.bundle.manifest["classifier"]["colour_constancy"] == "shades-of-grey"
    crop, _ = crop_to_lesion(image, result.mask if result.lesion_found else None,
                             pipeline.classifier.input_size[0], pipeline.crop_margin, "shades-of-grey")
    reference = tf_lite("classifier", crop)
    # The model's own output, before the variant's calibration (temperature) is applied.
    np.testing.assert_array_equal(np.array(list(result.raw_probabilities.values()), np.float32), reference)


def test_no_lesion_classifies_the_whole_image(tiny_bundle, image):
    pipeline = Pipeline.load(tiny_bundle, "int8")
    pipeline.mask_threshold = 1.01  # no pixel can pass: the segmenter finds nothing
    result = pipeline.predict(image)
    assert not result.lesion_found and result.box is None and result.lesion_area_fraction == 0
    assert result.inconclusive_reason == "no_lesion" and result.label in pipeline.labels


def test_odd_image_arrays_are_normalised(tiny_bundle, image):
    pipeline = Pipeline.load(tiny_bundle, "int8")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    wide = (image.astype(np.uint16) * 257)
    for variant in (gray, rgba, wide):
        assert pipeline.predict(variant).mask.shape == image.shape[:2]
    assert pipeline.predict(wide).probabilities == pipeline.predict(image).probabilities


def test_largest_component_and_hole_filling():
    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True
    mask[12:16, 12:16] = False  # a hole
    mask[30:33, 30:33] = True  # a speck
    cleaned = fill_holes(largest_component(mask))
    assert cleaned[14, 14] and not cleaned[31, 31] and cleaned.sum() == 400
    assert not largest_component(np.zeros((5, 5), bool)).any()
    probability = np.zeros((10, 10), np.float32)
    probability[2:8, 2:8] = 0.9
    assert clean_mask(probability, (20, 20)).sum() == pytest.approx(144, abs=16)


def test_zip_bundle_loads_and_unsafe_zip_is_refused(tiny_bundle, image, tmp_path):
    archive = tiny_bundle.with_suffix(".zip")
    from_zip = Pipeline.load(archive, "int8").predict(image)
    from_dir = Pipeline.load(tiny_bundle, "int8").predict(image)
    assert from_zip.probabilities == from_dir.probabilities
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", (tiny_bundle / "manifest.json").read_text())
        zf.writestr("../escape.tflite", b"x")
    with pytest.raises(BundleError, match="unsafe"):
        load_bundle(evil)


def test_bundle_errors_name_the_problem(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="not a dermedge bundle"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="not in bundle"):
        Pipeline.load(tiny_bundle, "int4")
    if "coreml" in load_bundle(tiny_bundle).variants:
        with pytest.raises(BundleError, match="not TFLite"):
            Pipeline.load(tiny_bundle, "coreml")


def test_tta_averages_the_four_views_of_the_crop(tiny_bundle, image):
    plain = Pipeline.load(tiny_bundle, "fp32", num_threads=1)
    augmented = Pipeline.load(tiny_bundle, "fp32", num_threads=1, tta=True)
    crop = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    views = [crop, crop[:, ::-1], crop[::-1], np.rot90(crop)]
    expected = np.mean([plain.classify(np.ascontiguousarray(v)) for v in views], axis=0)
    np.testing.assert_allclose(augmented.classify(crop), expected, atol=1e-6)
    result = augmented.predict(image)
    assert abs(sum(result.probabilities.values()) - 1) < 1e-4 and result.box == plain.predict(image).box
