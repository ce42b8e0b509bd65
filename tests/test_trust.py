"""Trustworthy output: calibration applied from the manifest, inconclusive answers with reasons, and
`dermedge calibrate` writing what the runtime then applies."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from dermedge.commands.cli import app
from edge_runtime.bundle import DEFAULT_BUNDLE, MANIFEST, load_bundle
from edge_runtime.calibration import apply_temperature
from edge_runtime.pipeline import UNCERTAIN, Pipeline
from edge_runtime.synthetic import draw_lesion

runner = CliRunner()


@pytest.fixture
def lesion():
    return draw_lesion(np.random.default_rng(0))[0]


def _bundle_with(path, calibration: dict | None):
    """A copy of the shipped bundle whose int8 variant carries `calibration` (None: no entry, so the
    runtime returns the model's own output)."""
    shutil.copytree(DEFAULT_BUNDLE, path)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["variants"]["int8"].pop("calibration", None)
    if calibration is not None:
        manifest["variants"]["int8"]["calibration"] = calibration
    (path / MANIFEST).write_text(json.dumps(manifest))
    return path


@pytest.mark.runtime
def test_manifest_calibration_is_applied(tmp_path, lesion):
    bundle = _bundle_with(tmp_path / "calibrated", {"temperature": 2.0, "malignant_threshold": 0.3,
                                                    "min_confidence": 0.0})
    result = Pipeline.load(bundle, "int8", 1).predict(lesion)
    raw = np.array(list(result.raw_probabilities.values()))
    np.testing.assert_allclose(list(result.probabilities.values()), apply_temperature(raw, 2.0), atol=1e-6)
    assert result.malignant_threshold == 0.3
    assert result.malignant == (result.malignant_probability >= 0.3)
    plain = Pipeline.load(_bundle_with(tmp_path / "plain", None), "int8", 1).predict(lesion)
    assert plain.probabilities == plain.raw_probabilities  # no calibration entry: the model's own output
    np.testing.assert_allclose(list(plain.raw_probabilities.values()), raw, atol=1e-6)


@pytest.mark.runtime
def test_inconclusive_reasons(tmp_path, lesion):
    pipeline = Pipeline.load(num_threads=1)
    assert not pipeline.predict(lesion).inconclusive
    black = pipeline.predict(np.zeros_like(lesion))
    assert black.inconclusive_reason == "underexposed" and "dark" in black.hint
    skin = np.full_like(lesion, (225, 180, 150)) + np.random.default_rng(1).integers(0, 20, lesion.shape, dtype=np.uint8)
    assert pipeline.predict(skin).inconclusive_reason in ("no_lesion", "lesion_too_small")
    unsure = Pipeline.load(_bundle_with(tmp_path / "unsure", {"min_confidence": 0.999}), "int8", 1)
    result = unsure.predict(lesion)
    assert result.inconclusive_reason == UNCERTAIN and result.to_dict()["inconclusive"] is True
    assert result.label in unsure.labels  # the answer is still reported, flagged


def test_calibrate_command_writes_what_the_runtime_applies(tiny_runs, tiny_bundle, ham_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    result = runner.invoke(app, ["calibrate", "--bundle", str(bundle), "--images", str(ham_dir / "images"),
                                 "--labels", str(tiny_runs / "classify" / "split.csv"), "--split", "val",
                                 "--variants", "fp32,int8", "--coverage", "0.8"])
    assert result.exit_code == 0, result.output
    manifest = load_bundle(bundle).manifest
    for variant in ("fp32", "int8"):
        entry = manifest["variants"][variant]["calibration"]
        assert entry["temperature"] > 0 and 0 <= entry["malignant_threshold"] <= 1
        assert entry["fitted_on"]["split"] == "val" and entry["fitted_on"]["images"] > 0
        assert Pipeline.load(bundle, variant, 1).temperature == entry["temperature"]
    before = load_bundle(tiny_bundle).manifest["variants"]["fp16"].get("calibration")
    assert manifest["variants"]["fp16"].get("calibration") == before  # not asked for: left as it was
    zipped = runner.invoke(app, ["calibrate", "--bundle", str(tiny_bundle) + ".zip", "--images",
                                 str(ham_dir / "images"), "--labels", str(tiny_runs / "classify" / "split.csv")])
    assert zipped.exit_code == 2 and "calibrate the bundle folder" in zipped.output


def test_export_calibrates_on_the_validation_split(tiny_bundle):
    manifest = load_bundle(tiny_bundle).manifest
    tflite = [n for n, v in manifest["variants"].items() if v["format"] == "tflite"]
    assert all(manifest["variants"][n]["calibration"]["fitted_on"]["split"] == "val" for n in tflite)
