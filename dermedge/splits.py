"""Seeded train/val/test splits that keep every lesion's images together.

HAM10000 has several images of many lesions; a lesion seen in training and again in test makes
test scores look better than they are. Splits are stratified by diagnosis at the lesion level.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dermedge.datasets import Dataset, Sample
from dermedge.errors import DermedgeError

SPLITS = ("train", "val", "test")


def split_dataset(
    dataset: Dataset, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> dict[str, list[Sample]]:
    """Split by `Sample.group`, stratified by label, reproducibly for a given seed."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DermedgeError("split fractions must be in (0, 1) and sum to less than 1")
    samples = dataset.samples
    groups = sorted({s.group for s in samples})
    group_label = {}
    for s in samples:
        group_label.setdefault(s.group, s.label or "")
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    # Per label, shuffle that label's lesions and deal them out by the target fractions:
    # stratified at the lesion level, exact to one lesion per class.
    by_label: dict[str, list[str]] = {}
    for g in groups:
        by_label.setdefault(group_label[g], []).append(g)
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        n = len(members)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        for i, g in enumerate(members):
            assignment[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return {name: [s for s in samples if assignment[s.group] == name] for name in SPLITS}


def write_split_csv(splits: dict[str, list[Sample]], path: Path) -> None:
    """One row per image so every later number can be traced to exactly these images."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "lesion_id", "label", "split", "image_path", "mask_path"])
        for name in SPLITS:
            for s in splits[name]:
                writer.writerow(
                    [s.image_id, s.group, s.label or "", name, s.image_path, s.mask_path or ""]
                )


def read_split_csv(path: Path) -> dict[str, list[Sample]]:
    """Read back a split written by `write_split_csv` (e.g. to evaluate on a run's test split)."""
    splits: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            splits[row["split"]].append(
                Sample(
                    image_id=row["image_id"],
                    image_path=Path(row["image_path"]),
                    label=row["label"] or None,
                    mask_path=Path(row["mask_path"]) if row["mask_path"] else None,
                    lesion_id=row["lesion_id"],
                )
            )
    return splits
