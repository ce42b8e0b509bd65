"""Each model trains for one short epoch on a drawn dataset and leaves a complete run folder."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

pytest.importorskip("tensorflow")
from dermedge.cli import app  # noqa: E402

runner = CliRunner()


def _data_args(ham_dir):
    return ["--images", str(ham_dir / "images"), "--labels", str(ham_dir / "HAM10000_metadata.csv"),
            "--masks", str(ham_dir / "masks")]


def test_train_segment_writes_a_complete_run(ham_dir, tmp_path):
    out = tmp_path / "seg"
    result = runner.invoke(app, ["train", "segment", *_data_args(ham_dir), "--out", str(out),
                                 "--input-size", "32", "--depth", "2", "--base-filters", "4",
                                 "--epochs", "1", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    for name in ("segmenter.keras", "config.json", "split.csv", "history.json", "training_curves.png",
                 "val_metrics.json", "test_metrics.json", "summary.json"):
        assert (out / name).is_file(), name
    test = json.loads((out / "test_metrics.json").read_text())
    assert 0.0 <= test["dice"] <= 1.0 and test["n"] == len(test["dice_per_image"]) > 0
    config = json.loads((out / "config.json").read_text())
    assert config["depth"] == 2 and "command" in config


def test_train_fcn_decoder(ham_dir, tmp_path):
    result = runner.invoke(app, ["train", "segment", *_data_args(ham_dir), "--out", str(tmp_path / "fcn"),
                                 "--input-size", "32", "--depth", "3", "--decoder", "fcn",
                                 "--epochs", "1", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "fcn" / "summary.json").read_text())["parameters"] > 0


def test_train_classify_measures_imbalance_and_reports(ham_dir, tmp_path):
    out = tmp_path / "cls"
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(out),
                                 "--input-size", "32", "--head-epochs", "1", "--epochs", "1",
                                 "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    comparison = json.loads((out / "imbalance_comparison.json").read_text())
    assert set(comparison["results"]) == {"class-weights", "focal", "balanced-sampling", "none"}
    assert comparison["chosen"] in comparison["results"]
    for name in ("classifier.keras", "test_confusion.png", "test_roc.png", "val_metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert set(metrics["per_class"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    for key in ("accuracy", "balanced_accuracy", "macro_auc", "melanoma", "malignant"):
        assert key in metrics
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2  # head epoch + fine-tune epoch


def test_mirrored_strategy_on_two_logical_cpus(ham_dir, tmp_path):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dermedge.cli", "train", "segment", *_data_args(ham_dir),
         "--out", str(tmp_path / "mirrored"), "--input-size", "32", "--depth", "2", "--base-filters", "4",
         "--epochs", "1", "--batch-size", "8", "--strategy", "mirrored", "--logical-cpus", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MirroredStrategy, 2 replica(s)" in proc.stdout
    assert (tmp_path / "mirrored" / "segmenter.keras").is_file()


def test_bad_backbone_weights_path_is_one_line(ham_dir, tmp_path):
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(tmp_path / "x"),
                                 "--backbone-weights", str(tmp_path / "missing.h5"), "--input-size", "32"])
    assert result.exit_code == 2
    assert "backbone weights not found" in result.output
    assert "Traceback" not in result.output
