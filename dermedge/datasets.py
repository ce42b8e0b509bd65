"""Readers that turn a dataset on disk into a list of `Sample`s, whatever its layout.

Supported layouts (see `read_dataset`):
- HAM10000: image folder + `HAM10000_metadata.csv` (+ optional `<image_id>_segmentation.png` masks)
- ISIC challenge: image folder + one-hot ground truth CSV (`image,MEL,NV,...`) and/or a mask folder
- PH2: its native `PH2 Dataset images/IMDxxx/...` tree with `PH2_dataset.txt`
- class folders: `root/<class>/*.jpg`
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dermedge.errors import DermedgeError
from edge_runtime.image_io import IMAGE_SUFFIXES, ImageError, is_mask_file, read_image
from edge_runtime.labels import HAM10000_CLASSES

ISIC_ONE_HOT_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
# PH2's clinical diagnosis: 0 common nevus, 1 atypical nevus, 2 melanoma.
PH2_DIAGNOSES = {"0": "nv", "1": "nv", "2": "mel"}


@dataclass(frozen=True)
class Sample:
    """One image with what is known about it. `lesion_id` groups images of the same lesion."""

    image_id: str
    image_path: Path
    label: str | None = None
    mask_path: Path | None = None
    lesion_id: str = ""

    @property
    def group(self) -> str:
        return self.lesion_id or self.image_id


@dataclass
class Dataset:
    """Samples plus the label vocabulary and a note of what the reader had to skip."""

    samples: list[Sample]
    classes: tuple[str, ...]
    layout: str
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def label_counts(self) -> Counter:
        return Counter(s.label for s in self.samples)

    def subset(self, n: int, seed: int = 0) -> "Dataset":
        """A seeded random sample of `n` images, for quick experiments and tests."""
        if n >= len(self.samples):
            return self
        order = np.random.default_rng(seed).permutation(len(self.samples))[:n]
        return Dataset([self.samples[i] for i in sorted(order)], self.classes, self.layout, self.skipped)

    def with_masks_only(self) -> "Dataset":
        """The samples that have a mask; the others are noted as skipped."""
        kept = [s for s in self.samples if s.mask_path is not None]
        missing = [f"{s.image_id}: no mask" for s in self.samples if s.mask_path is None]
        if not kept:
            raise DermedgeError(
                f"none of the {len(self.samples)} images has a mask: pass --masks DIR with "
                "<image_id>_segmentation.png files"
            )
        return Dataset(kept, self.classes, self.layout, self.skipped + missing)


def read_rgb(path: Path | str) -> np.ndarray | None:
    """Decode an image file to RGB uint8, or None when it cannot be read.

    The runtime's reader, so training sees images exactly as a device does (EXIF, 16-bit, RGBA).
    """
    try:
        return read_image(path)
    except ImageError:
        return None


def read_mask(path: Path | str) -> np.ndarray | None:
    """Decode a mask file to a boolean lesion map, or None when it cannot be read."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None or data.size == 0:
        return None
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return None if mask is None else mask > 127


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DermedgeError(f"{what} folder not found: {path}")
    return path


def images_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of a folder by file stem (the image id), masks excluded."""
    _require_dir(folder, "image")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and not is_mask_file(p)
    }


def masks_by_image_id(folder: Path | None) -> dict[str, Path]:
    """Masks named `<image_id>_segmentation.png` or simply `<image_id>.png`."""
    if folder is None:
        return {}
    _require_dir(folder, "mask")
    masks = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = p.stem.removesuffix("_segmentation").removesuffix("_Segmentation")
        masks[stem] = p
    return masks


def _read_csv(path: Path, required: tuple[str, ...] = ()) -> list[dict[str, str]]:
    if not path.is_file():
        raise DermedgeError(f"CSV not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = tuple(reader.fieldnames or ())
        missing = [c for c in required if c not in columns]
        if missing:
            raise DermedgeError(
                f"{path.name} lacks column(s) {', '.join(missing)} (has: {', '.join(columns) or 'none'})"
            )
        return list(reader)


def _check_labels(samples: list[Sample], classes: tuple[str, ...], source: Path) -> None:
    unknown = sorted({s.label for s in samples if s.label not in classes})
    if unknown:
        raise DermedgeError(
            f"{source.name} has unknown label(s) {', '.join(map(str, unknown))}; expected one of "
            f"{', '.join(classes)}"
        )


def read_ham10000(
    images: Path, metadata_csv: Path, masks: Path | None = None
) -> Dataset:
    """HAM10000: `lesion_id,image_id,dx,...` rows; images named `<image_id>.jpg`."""
    images = _require_dir(Path(images), "image")
    rows = _read_csv(Path(metadata_csv), ("lesion_id", "image_id", "dx"))
    files = images_by_stem(images)
    mask_files = masks_by_image_id(Path(masks) if masks else None)
    samples, skipped = [], []
    for row in rows:
        image_id = row["image_id"].strip()
        if image_id not in files:
            skipped.append(f"{image_id}: image file missing")
            continue
        samples.append(
            Sample(
                image_id=image_id,
                image_path=files[image_id],
                label=row["dx"].strip().lower(),
                mask_path=mask_files.get(image_id),
                lesion_id=row["lesion_id"].strip(),
            )
        )
    _check_labels(samples, HAM10000_CLASSES, Path(metadata_csv))
    if not samples:
        raise DermedgeError(f"no image of {Path(metadata_csv).name} was found in {images}")
    return Dataset(samples, HAM10000_CLASSES, "ham10000", skipped)


def read_isic(
    images: Path, ground_truth_csv: Path | None = None, masks: Path | None = None
) -> Dataset:
    """ISIC challenge: one-hot `image,MEL,NV,BCC,AKIEC,BKL,DF,VASC` rows and/or a mask folder."""
    images = _require_dir(Path(images), "image")
    files = images_by_stem(images)
    mask_files = masks_by_image_id(Path(masks) if masks else None)
    samples, skipped = [], []
    if ground_truth_csv is not None:
        rows = _read_csv(Path(ground_truth_csv), ("image",) + ISIC_ONE_HOT_COLUMNS)
        for row in rows:
            image_id = row["image"].strip()
            if max(float(row[c] or 0) for c in ISIC_ONE_HOT_COLUMNS) <= 0:
                raise DermedgeError(f"{Path(ground_truth_csv).name}: row {image_id} has no class set")
            label = isic_label(row)
            if image_id not in files:
                skipped.append(f"{image_id}: image file missing")
                continue
            samples.append(Sample(image_id, files[image_id], label, mask_files.get(image_id)))
    else:
        if not mask_files:
            raise DermedgeError("an ISIC folder needs a ground-truth CSV, a mask folder, or both")
        samples = [Sample(i, p, None, mask_files.get(i)) for i, p in files.items()]
    if not samples:
        raise DermedgeError(f"no labelled image was found in {images}")
    return Dataset(samples, HAM10000_CLASSES, "isic", skipped)


def read_ph2(root: Path) -> Dataset:
    """PH2: `PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp` + `PH2_dataset.txt`."""
    root = _require_dir(Path(root), "PH2")
    table = next(iter(sorted(root.rglob("PH2_dataset.txt"))), None)
    if table is None:
        raise DermedgeError(f"PH2_dataset.txt not found under {root}")
    image_root = next(iter(sorted(root.rglob("PH2 Dataset images"))), None)
    if image_root is None:
        raise DermedgeError(f"'PH2 Dataset images' folder not found under {root}")
    diagnoses = _ph2_clinical_diagnoses(table)
    samples, skipped = [], []
    for name, code in sorted(diagnoses.items()):
        case = image_root / name
        image = case / f"{name}_Dermoscopic_Image" / f"{name}.bmp"
        mask = case / f"{name}_lesion" / f"{name}_lesion.bmp"
        if not image.is_file():
            skipped.append(f"{name}: image file missing")
            continue
        samples.append(Sample(name, image, PH2_DIAGNOSES[code], mask if mask.is_file() else None))
    if not samples:
        raise DermedgeError(f"no PH2 image was found under {image_root}")
    return Dataset(samples, HAM10000_CLASSES, "ph2", skipped)


def _ph2_clinical_diagnoses(table: Path) -> dict[str, str]:
    """Parse PH2's `|| Name || ... || Clinical Diagnosis || ...` table into {name: '0'|'1'|'2'}."""
    header, result = None, {}
    for line in table.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip().startswith("||"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("||")]
        if header is None:
            if "Name" in cells and "Clinical Diagnosis" in cells:
                header = cells
            continue
        if len(cells) < len(header):
            continue
        name = cells[header.index("Name")]
        code = cells[header.index("Clinical Diagnosis")]
        if name.startswith("IMD"):
            if code not in PH2_DIAGNOSES:
                raise DermedgeError(f"{table.name}: {name} has unknown clinical diagnosis {code!r}")
            result[name] = code
    if header is None:
        raise DermedgeError(f"{table.name} has no 'Name' / 'Clinical Diagnosis' header row")
    return result


def read_class_folders(root: Path) -> Dataset:
    """`root/<class>/*.jpg`: labels are the folder names (e.g. benign/, malignant/)."""
    root = _require_dir(Path(root), "dataset")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    samples = [
        Sample(f"{d.name}/{p.stem}", p, d.name)
        for d in class_dirs
        for p in sorted(d.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not samples:
        raise DermedgeError(f"no images in class folders under {root} (expected root/<class>/*.jpg)")
    classes = tuple(d.name for d in class_dirs if any(s.label == d.name for s in samples))
    return Dataset(samples, classes, "folders")


def read_dataset(
    images: Path,
    labels: Path | None = None,
    masks: Path | None = None,
) -> Dataset:
    """Pick the reader from what is on disk: a label CSV's columns, a PH2 tree, or class folders."""
    images = Path(images)
    if labels is not None:
        columns = _csv_columns(Path(labels))
        if {"image_id", "dx", "lesion_id"} <= columns:
            return read_ham10000(images, Path(labels), masks)
        if {"image", *ISIC_ONE_HOT_COLUMNS} <= columns:
            return read_isic(images, Path(labels), masks)
        raise DermedgeError(
            f"{Path(labels).name}: columns not recognised; expected HAM10000 metadata "
            "(lesion_id,image_id,dx) or ISIC one-hot ground truth (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC)"
        )
    _require_dir(images, "image")
    if next(iter(images.rglob("PH2_dataset.txt")), None) is not None:
        return read_ph2(images)
    if masks is not None:
        return read_isic(images, None, masks)
    return read_class_folders(images)


def _csv_columns(path: Path) -> set[str]:
    if not path.is_file():
        raise DermedgeError(f"CSV not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        return set(next(csv.reader(f), []))


def isic_label(row: dict[str, str]) -> str:
    """The diagnosis of an ISIC one-hot ground-truth row (the column with the largest value)."""
    values = [float(row[c] or 0) for c in ISIC_ONE_HOT_COLUMNS]
    return ISIC_ONE_HOT_COLUMNS[int(np.argmax(values))].lower()


BINARY_COLUMNS = ("melanoma", "malignant", "target", "benign_malignant")
POSITIVE_WORDS = {"1", "1.0", "true", "yes", "malignant", "melanoma", "mel"}
NEGATIVE_WORDS = {"0", "0.0", "false", "no", "benign"}


@dataclass
class LabelTable:
    """Image ids and their ground truth, read from any of the label CSV forms `evaluate` accepts."""

    form: str  # "ham10000", "isic", "split", or "binary"
    ids: list[str]
    targets: list  # class names, or 0/1 for the binary form
    binary_column: str | None = None

    @property
    def binary(self) -> bool:
        return self.form == "binary"


def read_label_table(path: Path, split: str | None = None) -> LabelTable:
    """Recognise the CSV by its columns. A dermedge `split.csv` is filtered to `split` (default test)."""
    if not Path(path).is_file():
        raise DermedgeError(f"label CSV not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        rows = list(reader)
    if {"image_id", "label", "split"} <= columns:
        wanted = split or "test"
        rows = [r for r in rows if r["split"] == wanted]
        if not rows:
            raise DermedgeError(f"{Path(path).name} has no rows in split {wanted!r}")
        return LabelTable("split", [r["image_id"] for r in rows], [r["label"] for r in rows])
    if split:
        raise DermedgeError("--split applies to a dermedge split.csv; "
                            f"{Path(path).name} has no split column")
    if {"image_id", "dx"} <= columns:
        return LabelTable("ham10000", [r["image_id"] for r in rows], [r["dx"] for r in rows])
    if {"image", *ISIC_ONE_HOT_COLUMNS} <= columns:
        return LabelTable("isic", [r["image"] for r in rows], [isic_label(r) for r in rows])
    id_column = "image_id" if "image_id" in columns else "image" if "image" in columns else None
    target_column = next((c for c in BINARY_COLUMNS if c in columns), None)
    if id_column and target_column:
        targets = []
        for r in rows:
            word = str(r[target_column]).strip().lower()
            if word not in POSITIVE_WORDS | NEGATIVE_WORDS:
                raise DermedgeError(f"{Path(path).name}: {target_column}={r[target_column]!r} for "
                                    f"{r[id_column]} is neither 0/1 nor benign/malignant")
            targets.append(int(word in POSITIVE_WORDS))
        return LabelTable("binary", [r[id_column] for r in rows], targets, target_column)
    raise DermedgeError(
        f"{Path(path).name}: columns not recognised; expected HAM10000 metadata (image_id,dx), ISIC "
        "one-hot (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC), a dermedge split.csv, or image_id/image plus "
        "one of " + ", ".join(BINARY_COLUMNS)
    )
