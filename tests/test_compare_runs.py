"""benchmarks/compare_runs.py: the paired comparison that chooses a recipe on validation."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_runs.py"
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _run(folder: Path, probabilities: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> Path:
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"classes": CLASSES}))
    np.savez(folder / "val_predictions.npz", probabilities=probabilities, labels=labels, image_ids=ids)
    return folder


def _compare(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args), "--resamples", "300"],
                          capture_output=True, text=True)


def test_a_candidate_that_fixes_one_class_wins_by_an_interval_clear_of_zero(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 40)
    ids = np.array([f"ISIC_{i:07d}" for i in range(len(labels))])
    good = np.eye(7)[labels] * 0.6 + rng.uniform(0, 0.1, (len(labels), 7))
    base = good.copy()
    base[labels == 3] = np.eye(7)[5] * 0.7 + 0.05  # the baseline calls every df a nevus
    baseline = _run(tmp_path / "base", base / base.sum(1, keepdims=True), labels, ids)
    candidate = _run(tmp_path / "cand", good / good.sum(1, keepdims=True), labels, ids)

    done = _compare(baseline, candidate, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    ba = report["figures"]["balanced_accuracy"]
    assert abs(ba["delta"] - 1 / 7) < 1e-4 and ba["delta_ci95"][0] > 0.05
    assert report["recall"]["baseline"]["df"] == 0.0 and report["recall"]["candidate"]["df"] == 1.0
    assert report["top1_agreement"] == round(1 - 40 / 280, 4)
    assert "| balanced_accuracy |" in done.stderr


def test_runs_on_different_images_are_refused_in_one_line(tmp_path):
    labels = np.arange(7).repeat(3)
    p = np.eye(7)[labels]
    baseline = _run(tmp_path / "a", p, labels, np.array([f"a{i}" for i in range(21)]))
    candidate = _run(tmp_path / "b", p, labels, np.array([f"b{i}" for i in range(21)]))
    done = _compare(baseline, candidate)
    assert done.returncode != 0 and "differ" in done.stderr and "Traceback" not in done.stderr
    missing = _compare(baseline, tmp_path / "nowhere")
    assert missing.returncode != 0 and "not found" in missing.stderr and "Traceback" not in missing.stderr
