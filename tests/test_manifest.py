"""The bundle manifest is validated field by field, and a tampered model file is refused by sha256.

Runs on a copy of the shipped default bundle: no TensorFlow, no export needed.
"""

import copy
import json
import shutil

import numpy as np
import pytest

from edge_runtime.bundle import DEFAULT_BUNDLE, MANIFEST, BundleError, load_bundle, validate_manifest
from edge_runtime.pipeline import Pipeline
from edge_runtime.synthetic import draw_lesion

pytestmark = pytest.mark.runtime  # base install only


@pytest.fixture(scope="module")
def manifest():
    return json.loads((DEFAULT_BUNDLE / MANIFEST).read_text())


def _set(manifest: dict, dotted: str, value) -> dict:
    changed = copy.deepcopy(manifest)
    *parents, last = dotted.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return changed


_DELETE = object()
FIRST = "variants.int8.files.classifier"


@pytest.mark.parametrize("field, value, message", [
    ("labels", _DELETE, "missing field(s) labels"),
    ("schema_version", 99, "schema_version 99 is not supported"),
    ("labels", [], "labels must be a non-empty list"),
    ("labels", ["nv", "nv"], "labels has duplicates"),
    ("malignant_labels", ["melanoma"], "malignant_labels must be a list of names from labels"),
    ("classifier.input_size", [224], "classifier.input_size must be [height, width]"),
    ("crop_margin", "wide", "crop_margin must be a number"),
    ("thresholds.malignant", 1.5, "thresholds.malignant must be a number in [0.0, 1.0]"),
    ("variants", {}, "variants must be a non-empty object"),
    (f"{FIRST}.sha256", "abc", f"{FIRST}.sha256 must be 64 lowercase hex digits"),
    (f"{FIRST}.path", "../../etc/passwd", f"{FIRST}.path '../../etc/passwd' leaves the bundle"),
    (f"{FIRST}.path", "/etc/passwd", "leaves the bundle"),
    (f"{FIRST}.bytes", -1, f"{FIRST}.bytes must be a byte count"),
    (f"{FIRST}.sha256", _DELETE, f"{FIRST} needs path, bytes, sha256"),
    ("default_variant", "fp64", "default_variant 'fp64' is not one of the variants"),
    ("classifier.colour_constancy", "retinex", "classifier.colour_constancy must be one of none, shades-of-grey"),
])
def test_manifest_errors_name_the_field(manifest, field, value, message):
    validate_manifest(manifest)  # the shipped one is valid
    with pytest.raises(BundleError) as error:
        validate_manifest(_set(manifest, field, value), "bundle/manifest.json")
    assert str(error.value).startswith("bundle/manifest.json: ")
    assert message in str(error.value)


def test_unknown_extra_fields_are_allowed(manifest, tmp_path):
    """Fields a newer export adds, at any level, pass validation and stay in the loaded manifest (a
    manifest rewritten from it, as `dermedge calibrate` does, keeps them); the fields the runtime
    reads still read as before: same labels, thresholds, variant and the same prediction."""
    newer = copy.deepcopy(manifest)
    newer["added_by_a_newer_export"] = {"anything": 1}
    newer["thresholds"]["added_threshold"] = 0.25
    newer["classifier"]["added_note"] = "ignored by this runtime"
    newer["variants"]["int8"]["added_flag"] = True
    newer["variants"]["int8"]["files"]["classifier"]["added_compression"] = "none"
    as_written = copy.deepcopy(newer)
    validate_manifest(newer)
    assert newer == as_written  # validation neither drops nor rewrites anything

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    (bundle / MANIFEST).write_text(json.dumps(newer))
    loaded = load_bundle(bundle)
    assert loaded.manifest == as_written
    assert loaded.manifest["added_by_a_newer_export"] == {"anything": 1}
    assert loaded.manifest["variants"]["int8"]["files"]["classifier"]["added_compression"] == "none"
    assert loaded.labels == tuple(manifest["labels"]) and list(loaded.variants) == list(manifest["variants"])
    assert loaded.default_variant == load_bundle(DEFAULT_BUNDLE).default_variant

    shipped, extended = Pipeline.load(DEFAULT_BUNDLE, "int8", 1), Pipeline.load(bundle, "int8", 1)
    for attribute in ("labels", "malignant_labels", "crop_margin", "mask_threshold", "malignant_threshold",
                      "temperature", "min_confidence"):
        assert getattr(extended, attribute) == getattr(shipped, attribute), attribute
    image = draw_lesion(np.random.default_rng(3))[0]
    assert extended.predict(image).probabilities == shipped.predict(image).probabilities


def test_load_refuses_a_bad_manifest_and_a_tampered_model(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    (bundle / MANIFEST).write_text(json.dumps({**manifest, "crop_margin": -1}))
    with pytest.raises(BundleError, match="crop_margin must be a number"):
        load_bundle(bundle)
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    model = bundle / manifest["variants"]["int8"]["files"]["classifier"]["path"]
    original = model.read_bytes()
    content = bytearray(original)
    content[len(content) // 2] ^= 0xFF  # one flipped byte in the weights
    model.write_bytes(bytes(content))
    with pytest.raises(BundleError, match="does not match its sha256"):
        Pipeline.load(bundle, "int8")
    model.write_bytes(original)
    Pipeline.load(bundle, "int8")  # the byte put back, it loads: the refusal was the tampering's
