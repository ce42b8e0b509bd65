import csv

import numpy as np
import pytest

from dermedge.datasets import read_dataset, read_ham10000, read_isic, read_ph2
from dermedge.errors import DermedgeError
from dermedge.splits import read_split_csv, split_dataset, write_split_csv
from edge_runtime.labels import HAM10000_CLASSES
from synthetic_data import make_class_folders, make_isic, make_ph2

pytestmark = pytest.mark.runtime  # base install only


def test_ham10000_reader_finds_images_masks_and_lesions(ham_dir):
    ds = read_dataset(ham_dir / "images", ham_dir / "HAM10000_metadata.csv", ham_dir / "masks")
    assert ds.layout == "ham10000"
    assert len(ds) == 56
    assert ds.classes == HAM10000_CLASSES
    assert all(s.mask_path is not None and s.mask_path.is_file() for s in ds.samples)
    assert len({s.group for s in ds.samples}) == 28
    assert ds.label_counts()["mel"] == 8


def test_isic_reader_decodes_one_hot(tmp_path):
    root = make_isic(tmp_path)
    ds = read_dataset(root / "images", root / "ground_truth.csv", root / "masks")
    assert ds.layout == "isic"
    assert [s.label for s in ds.samples] == ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    assert all(s.mask_path for s in ds.samples)
    masks_only = read_isic(root / "images", None, root / "masks")
    assert len(masks_only) == 7 and masks_only.samples[0].label is None


def test_ph2_reader_maps_clinical_diagnosis(tmp_path):
    ds = read_dataset(make_ph2(tmp_path))
    assert ds.layout == "ph2"
    assert [s.label for s in ds.samples] == ["nv", "nv", "mel", "mel"]
    assert all(s.image_path.suffix == ".bmp" and s.mask_path.is_file() for s in ds.samples)


def test_class_folder_reader_uses_folder_names(tmp_path):
    ds = read_dataset(make_class_folders(tmp_path))
    assert ds.layout == "folders"
    assert ds.classes == ("benign", "malignant")
    assert ds.label_counts() == {"benign": 3, "malignant": 3}


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(DermedgeError, match="image folder not found"):
        read_ham10000(tmp_path / "nope", tmp_path / "meta.csv")


def test_missing_csv_columns_are_named(ham_dir, tmp_path):
    bad = tmp_path / "meta.csv"
    bad.write_text("image_id,diagnosis\nISIC_0000,nv\n")
    with pytest.raises(DermedgeError, match="columns not recognised"):
        read_dataset(ham_dir / "images", bad)
    with pytest.raises(DermedgeError, match="lacks column"):
        read_ham10000(ham_dir / "images", bad)


def test_unknown_label_is_rejected(ham_dir, tmp_path):
    rows = list(csv.DictReader(open(ham_dir / "HAM10000_metadata.csv")))
    rows[0]["dx"] = "freckle"
    bad = tmp_path / "meta.csv"
    with open(bad, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DermedgeError, match="unknown label.*freckle"):
        read_dataset(ham_dir / "images", bad)


def test_images_without_masks_are_reported(ham_dir, tmp_path):
    ds = read_dataset(ham_dir / "images", ham_dir / "HAM10000_metadata.csv")
    with pytest.raises(DermedgeError, match="has a mask"):
        ds.with_masks_only()


def test_split_keeps_lesions_together_and_is_reproducible(ham_dir, tmp_path):
    ds = read_dataset(ham_dir / "images", ham_dir / "HAM10000_metadata.csv", ham_dir / "masks")
    splits = split_dataset(ds, 0.25, 0.25, seed=7)
    groups = {name: {s.group for s in samples} for name, samples in splits.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(v) for v in splits.values()) == len(ds)
    # stratified: every class is in every split (4 lesions per class, 1 each to val and test)
    for samples in splits.values():
        assert {s.label for s in samples} == set(HAM10000_CLASSES)
    again = split_dataset(ds, 0.25, 0.25, seed=7)
    assert [s.image_id for s in again["test"]] == [s.image_id for s in splits["test"]]
    other = split_dataset(ds, 0.25, 0.25, seed=8)
    assert [s.image_id for s in other["test"]] != [s.image_id for s in splits["test"]]
    write_split_csv(splits, tmp_path / "split.csv")
    back = read_split_csv(tmp_path / "split.csv")
    assert [s.image_id for s in back["val"]] == [s.image_id for s in splits["val"]]


def test_real_ham10000_split_has_no_leak(shared_ham10000):
    ds = read_dataset(shared_ham10000 / "images", shared_ham10000 / "HAM10000_metadata.csv",
                      shared_ham10000 / "masks")
    assert len(ds) == 10015
    splits = split_dataset(ds, seed=0)
    groups = {name: {s.group for s in samples} for name, samples in splits.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["val"] & groups["test"])
    fractions = np.array([len(splits[n]) for n in ("train", "val", "test")]) / len(ds)
    assert np.allclose(fractions, [0.70, 0.15, 0.15], atol=0.02)
