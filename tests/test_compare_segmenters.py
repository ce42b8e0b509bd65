"""benchmarks/compare_segmenters.py: the paired comparison that chooses a segmenter on validation."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_segmenters.py"


def _run(folder: Path, dice: np.ndarray, split_csv: str = "image_id,split\na,val\n") -> Path:
    folder.mkdir()
    (folder / "split.csv").write_text(split_csv)
    (folder / "val_metrics.json").write_text(json.dumps({"dice_per_image": [round(float(d), 5) for d in dice]}))
    return folder


def _compare(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args), "--resamples", "300"],
                          capture_output=True, text=True)


def test_a_candidate_that_mends_the_worst_masks_wins_on_the_worst_decile(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.90, 0.97, 200)
    base[:20] = 0.5  # a tenth of the masks miss half the lesion, under the Jaccard floor
    cand = base.copy()
    cand[:20] = 0.9
    done = _compare(_run(tmp_path / "base", base), _run(tmp_path / "cand", cand), "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out.json").read_text())["figures"]
    assert report["dice_worst_decile"]["baseline"] == 0.5 and report["dice_worst_decile"]["delta_ci95"][0] > 0.2
    assert abs(report["dice"]["delta"] - 0.4 * 20 / 200) < 1e-4
    # IoU of Dice 0.5 is 1/3 < 0.65, counted as 0; of Dice 0.9 it is 0.818
    assert abs(report["thresholded_jaccard"]["delta"] - (0.9 / 1.1) * 20 / 200) < 1e-3
    assert "| dice_worst_decile |" in done.stderr


def test_runs_on_different_splits_are_refused_in_one_line(tmp_path):
    dice = np.full(10, 0.9)
    baseline = _run(tmp_path / "a", dice)
    other = _run(tmp_path / "b", dice, "image_id,split\nb,val\n")
    done = _compare(baseline, other)
    assert done.returncode != 0 and "differ" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "split.csv").write_text("image_id,split\na,val\n")
    missing = _compare(baseline, tmp_path / "c")
    assert missing.returncode != 0 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    nowhere = _compare(baseline, tmp_path / "nowhere")
    assert nowhere.returncode != 0 and "not found" in nowhere.stderr and "Traceback" not in nowhere.stderr
