"""What the benchmark scripts share: the arguments of those that compare bundles on a split, and
their one ending, the result as JSON on stdout and, with --json, in a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def emit(report: dict, path: Path | None) -> None:
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


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
