"""What the benchmark scripts share: the arguments of those that compare bundles on a split, the
crops of a classifier run for those that probe its Keras model, the command line of the paired
comparisons of two runs, and their one ending, the result as JSON on stdout and, with --json, in a
file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def emit(report: dict, path: Path | None) -> None:
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")



def paired_comparison_main(description: str, compare, markdown, splits: tuple[str, ...], example_run: str) -> None:
    """The command line of `compare_runs.py` and `compare_segmenters.py`: two run folders and a
    split in; `compare(baseline, candidate, split, resamples)` -> report, its `markdown(report)`
    tables on stderr (and --markdown), the report as JSON (and --json)."""
    from dermedge.metrics import BOOTSTRAP_RESAMPLES

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("baseline", type=Path, help=f"the run to beat (e.g. {example_run})")
    parser.add_argument("candidate", type=Path, help="the run with the change, same split")
    parser.add_argument("--split", default="val", choices=splits, help="val chooses; test is reported only")
    parser.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown")
    args = parser.parse_args()
    report = compare(args.baseline, args.candidate, args.split, args.resamples)
    tables = markdown(report)
    print(tables, file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(tables + "\n")
    emit(report, args.json)

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


def paired_figures_markdown(report: dict, headline: str) -> list[str]:
    """The markdown lines every paired comparison starts with: its headline (split, images,
    resamples, then `headline`) and one row per figure with its delta and interval."""
    lines = [f"{report['split']} split, {report['n']} images, paired bootstrap ({report['resamples']} resamples); "
             f"{headline}", "", "| figure | baseline | candidate | Δ | Δ 95% CI |", "|---|---:|---:|---:|---:|"]
    for name, f in report["figures"].items():
        lines.append(f"| {name} | {f['baseline']:.4f} | {f['candidate']:.4f} | {f['delta']:+.4f} | "
                     f"[{f['delta_ci95'][0]:+.4f}, {f['delta_ci95'][1]:+.4f}] |")
    return lines


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
