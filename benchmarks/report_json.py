"""What the benchmark scripts share: the arguments of those that compare bundles on a split, the
crops of a classifier run for those that probe its Keras model, and their one ending, the result as
JSON on stdout and, with --json, in a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def emit(report: dict, path: Path | None) -> None:
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


class RunCrops:
    """A classifier run folder's classes and split, and its lesion crops cut as its training cut
    them (input size, crop margin, colour constancy from its config.json)."""

    def __init__(self, run: Path):
        from dermedge.splits import read_split_csv

        config = json.loads((run / "config.json").read_text())
        self.classes = tuple(json.loads((run / "summary.json").read_text())["classes"])
        self.splits = read_split_csv(run / "split.csv")
        self.size = int(config["input_size"])
        self._options = {"colour_constancy": config.get("colour_constancy", "none")}
        if config.get("crop_margin") is not None:
            self._options["margin"] = config["crop_margin"]
        # The training crops in one fixed order: the first N calibrate, the next ones tune (AdaRound).
        self.train_order = [int(i) for i in np.random.default_rng(0).permutation(len(self.splits["train"]))]

    def crops(self, samples):
        from dermedge.train.data import load_crop_arrays

        return load_crop_arrays(samples, self.classes, self.size, **self._options)

    def training(self, start: int, stop: int):
        """Crops of the training split in `train_order`, positions start..stop."""
        return self.crops([self.splits["train"][i] for i in self.train_order[start:stop]])


def bundle_split_parser(description: str, variant: str) -> argparse.ArgumentParser:
    """--bundle (repeatable), --variant, --data, --labels, --split and --json, with the defaults
    every comparison script uses (the shipped bundle, the reference split's validation images)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bundle", action="append", default=None, help="Repeat to compare bundles (default: shipped).")
    parser.add_argument("--variant", default=variant)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ham10000"))
    parser.add_argument("--labels", type=Path, default=Path("runs/classify/split.csv"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--json", type=Path, default=None)
    return parser
