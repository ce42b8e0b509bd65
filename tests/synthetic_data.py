"""Tiny datasets in every supported layout, drawn by the tests themselves."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.labels import HAM10000_CLASSES
from edge_runtime.synthetic import draw_lesion

ISIC_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def _write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), mask.astype(np.uint8) * 255)


def make_ham10000(root: Path, lesions_per_class: int = 4, images_per_lesion: int = 2,
                  width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """`root/images`, `root/masks`, `root/HAM10000_metadata.csv`, several images per lesion."""
    rng = np.random.default_rng(seed)
    rows = []
    for c, dx in enumerate(HAM10000_CLASSES):
        for lesion in range(lesions_per_class):
            lesion_id = f"HAM_{c}{lesion:04d}"
            for k in range(images_per_lesion):
                image_id = f"ISIC_{c}{lesion:03d}{k}"
                image, mask = draw_lesion(rng, width, height, c)
                _write_rgb(root / "images" / f"{image_id}.jpg", image)
                _write_mask(root / "masks" / f"{image_id}_segmentation.png", mask)
                rows.append({"lesion_id": lesion_id, "image_id": image_id, "dx": dx,
                             "dx_type": "histo", "age": "50.0", "sex": "male", "localization": "back"})
    with open(root / "HAM10000_metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def make_isic(root: Path, n: int = 7, seed: int = 1) -> Path:
    """`root/images`, `root/masks`, `root/ground_truth.csv` (one-hot)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "ground_truth.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *ISIC_COLUMNS])
        for i in range(n):
            label = ISIC_COLUMNS[i % len(ISIC_COLUMNS)]
            image, mask = draw_lesion(rng, 64, 48, HAM10000_CLASSES.index(label.lower()))
            _write_rgb(root / "images" / f"ISIC_{i:07d}.jpg", image)
            _write_mask(root / "masks" / f"ISIC_{i:07d}_segmentation.png", mask)
            writer.writerow([f"ISIC_{i:07d}", *("1.0" if c == label else "0.0" for c in ISIC_COLUMNS)])
    return root


def make_ph2(root: Path, diagnoses=("0", "1", "2", "2"), seed: int = 2) -> Path:
    """PH2's native tree: `PH2 Dataset images/IMDxxx/...bmp` and `PH2_dataset.txt`."""
    rng = np.random.default_rng(seed)
    lines = ["||   Name   || Histological Diagnosis || Clinical Diagnosis || Asymmetry ||"]
    for i, code in enumerate(diagnoses):
        name = f"IMD{i + 2:03d}"
        image, mask = draw_lesion(rng, 64, 48, 4 if code == "2" else 5)
        case = root / "PH2Dataset" / "PH2 Dataset images" / name
        _write_rgb(case / f"{name}_Dermoscopic_Image" / f"{name}.bmp", image)
        _write_mask(case / f"{name}_lesion" / f"{name}_lesion.bmp", mask)
        lines.append(f"||  {name}  ||                        ||          {code}         ||     0     ||")
    (root / "PH2Dataset" / "PH2_dataset.txt").write_text("\n".join(lines) + "\n")
    return root


def make_class_folders(root: Path, per_class: int = 3, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("benign", "malignant")):
        for i in range(per_class):
            image, _ = draw_lesion(rng, 64, 48, 5 if c == 0 else 4)
            _write_rgb(root / name / f"{name}_{i}.jpg", image)
    return root
