"""Balanced accuracy of the deployed crops under each symmetry of the square, and of view sets.

Why: `--tta` averages the crop, its two flips and a quarter turn. Whether that helps is a question
for the validation split, and whether a view helps on its own says if the classifier really is
orientation-free (it is trained on all eight symmetries). The crop is cut once per image (U-Net mask
-> crop, as `predict` does); the classifier runs on all eight views and the probabilities are kept,
so every view set is scored from one pass.

    python benchmarks/tta_views.py --split val [--bundle B] [--variant int8] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from rich.console import Console

from dermedge.commands.batch import progress_bar
from dermedge.datasets import read_label_table
from dermedge.metrics import balanced_accuracy
from edge_runtime.image_io import read_image
from report_json import emit  # benchmarks/, beside this script
from edge_runtime.pipeline import TTA_VIEWS, Pipeline

VIEWS = {  # the eight symmetries of the square; the first four are what `--tta` averages
    **TTA_VIEWS,
    "rot180": lambda c: np.rot90(c, 2),
    "rot270": lambda c: np.rot90(c, 3),
    "transpose": lambda c: c.transpose(1, 0, 2),
    "anti_transpose": lambda c: np.rot90(c, 2).transpose(1, 0, 2),
}


def view_probabilities(pipeline: Pipeline, paths: list[Path]) -> np.ndarray:
    """(images, views, classes) class probabilities of each image's deployed crop under each view."""
    out = np.zeros((len(paths), len(VIEWS), len(pipeline.labels)), np.float32)
    with progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task("classifying 8 views", total=len(paths))
        for i, path in enumerate(paths):
            crop = pipeline.locate(read_image(path)).crop
            for j, view in enumerate(VIEWS.values()):
                out[i, j] = pipeline.classifier.run(np.ascontiguousarray(view(crop)))
            bar.advance(task)
    return out


def score(probs: np.ndarray, y: np.ndarray, views: tuple[str, ...]) -> float:
    index = [list(VIEWS).index(v) for v in views]
    return balanced_accuracy(y, probs[:, index].mean(axis=1).argmax(axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=Path("../shared/data/ham10000/images"))
    parser.add_argument("--labels", type=Path, default=Path("runs/classify/split.csv"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--variant", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    pipeline = Pipeline.load(args.bundle, args.variant, num_threads=1)
    table = read_label_table(args.labels, args.split)
    paths = [args.images / f"{image_id}.jpg" for image_id in table.ids]
    y = np.array([list(pipeline.labels).index(t) for t in table.targets])
    probs = view_probabilities(pipeline, paths)

    single = {v: score(probs, y, (v,)) for v in VIEWS}
    pairs = {f"identity+{v}": score(probs, y, ("identity", v)) for v in list(VIEWS)[1:]}
    result = {
        "bundle": str(pipeline.bundle.root), "split": args.split, "variant": pipeline.variant, "n": len(y),
        "single_view": single,
        "identity_plus_one": pairs, "tta_4_views": score(probs, y, tuple(TTA_VIEWS)),
        "all_8_views": score(probs, y, tuple(VIEWS)),
        "best_4_view_set_with_identity": max(
            (score(probs, y, ("identity",) + rest), ("identity",) + rest)
            for rest in itertools.combinations(list(VIEWS)[1:], 3)),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
