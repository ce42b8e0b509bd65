"""Paired comparison of two segmenter runs on one split, from the per-image Dice each run writes.

Why: the segmenter's mean Dice moves by tenths of a point between recipes, less than the spread of
its per-image figures; what says whether a change is real is the interval of the *difference* on
the same images (a paired bootstrap), for mean Dice, the worst decile (the crops that go wrong) and
the ISIC thresholded Jaccard. It reads `<run>/<split>_metrics.json` (float Keras masks at image
resolution, as `dermedge train segment` writes them): no model, no TensorFlow.

    python benchmarks/compare_segmenters.py runs/segment /tmp/candidate --split val \
        [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dermedge.metrics import BOOTSTRAP_RESAMPLES, bootstrap_picks, interval95, mask_summary
from report_json import paired_comparison_main, paired_figures_markdown  # benchmarks/, beside this script


NAMES = ("dice", "dice_worst_decile", "thresholded_jaccard")


def per_image_dice(run: Path, split: str) -> np.ndarray:
    path = run / f"{split}_metrics.json"
    if not path.exists():
        sys.exit(f"error: {path} not found (a segmenter run's --out folder holds it)")
    return np.asarray(json.loads(path.read_text())["dice_per_image"], dtype=np.float64)


def figures(dice: np.ndarray) -> np.ndarray:
    """(mean Dice, worst-decile mean Dice, thresholded Jaccard), by `mask_summary`; a single image's
    IoU is D / (2 - D)."""
    summary = mask_summary(dice, dice / (2.0 - dice))
    return np.array([summary[name] for name in NAMES])


def compare(baseline: Path, candidate: Path, split: str, resamples: int = BOOTSTRAP_RESAMPLES,
            seed: int = 0) -> dict:
    for run in (baseline, candidate):
        if not (run / "split.csv").is_file():
            sys.exit(f"error: {run / 'split.csv'} not found (a segmenter run's --out folder holds it)")
    if (baseline / "split.csv").read_bytes() != (candidate / "split.csv").read_bytes():
        sys.exit("error: the two runs' split.csv differ: compare runs made on the same split")
    base, cand = per_image_dice(baseline, split), per_image_dice(candidate, split)
    if len(base) != len(cand):
        sys.exit(f"error: {len(base)} vs {len(cand)} {split} images (an image unreadable in one run?)")
    deltas = np.array([figures(cand[picks]) - figures(base[picks])
                       for picks in bootstrap_picks(len(base), resamples, seed)])
    point_base, point_cand = figures(base), figures(cand)
    return {
        "split": split, "n": int(len(base)), "baseline": str(baseline), "candidate": str(candidate),
        "resamples": resamples,
        "figures": {name: {"baseline": round(float(b), 4), "candidate": round(float(c), 4),
                           "delta": round(float(c - b), 4),
                           "delta_ci95": [round(x, 4) for x in interval95(deltas[:, i])]}
                    for i, (name, b, c) in enumerate(zip(NAMES, point_base, point_cand))},
        "images_better": int((cand > base).sum()), "images_worse": int((cand < base).sum()),
    }


def markdown(report: dict) -> str:
    return "\n".join(paired_figures_markdown(
        report, f"candidate better on {report['images_better']} images, worse on {report['images_worse']}"))


def main() -> None:
    paired_comparison_main(__doc__.splitlines()[0], compare, markdown, ("val", "test"), "runs/segment")


if __name__ == "__main__":
    main()
