"""`dermedge predict` and `dermedge evaluate` on a tiny bundle and the synthetic dataset."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dermedge.commands.cli import app
from dermedge.datasets import read_label_table, read_mask
from edge_runtime.preprocess import lesion_box

pytest.importorskip("tensorflow")  # the tiny bundle is exported by the tests themselves
runner = CliRunner()


@pytest.fixture
def folder(ham_dir, tmp_path):
    """Five good images and one corrupt file among them."""
    out = tmp_path / "images"
    out.mkdir()
    for path in sorted((ham_dir / "images").iterdir())[:5]:
        shutil.copy(path, out / path.name)
    (out / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return out


def test_predict_folder_skips_the_corrupt_file(tiny_bundle, folder, tmp_path):
    out_json, out_csv, overlays = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "overlays"
    result = runner.invoke(app, ["predict", str(folder), "--bundle", str(tiny_bundle), "--json", str(out_json),
                                 "--csv", str(out_csv), "--overlay", str(overlays), "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text())
    assert len(report["results"]) == 5 and report["variant"] == "int8"  # the manifest default
    assert [s["path"].endswith("broken.jpg") for s in report["skipped"]] == [True]
    assert "not a readable image" in report["skipped"][0]["error"]
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 5 and {"p_mel", "malignant_probability"} <= set(rows[0])
    assert len(list(overlays.glob("*.overlay.jpg"))) == 5
    assert "broken.jpg" in result.output


def test_predict_needs_a_readable_input(tiny_bundle, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    result = runner.invoke(app, ["predict", str(tmp_path / "bad.png"), "--bundle", str(tiny_bundle)])
    assert result.exit_code == 2 and "no image could be analysed" in result.output
    result = runner.invoke(app, ["predict", "--bundle", str(tiny_bundle)])
    assert result.exit_code == 2 and "--example" in result.output
    result = runner.invoke(app, ["predict", "--bundle", str(tmp_path / "nowhere"), "--example"])
    assert result.exit_code == 2 and "not a dermedge bundle" in result.output


def test_predict_example_runs_without_data(tiny_bundle, tmp_path):
    result = runner.invoke(app, ["predict", "--example", "--bundle", str(tiny_bundle), "--json", "-",
                                 "--overlay", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output
    assert (tmp_path / "synthetic_example.overlay.jpg").is_file()


def test_evaluate_segment_and_classify(tiny_bundle, ham_dir, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(ham_dir / "images", images)
    (images / "ISIC_broken.jpg").write_bytes(b"garbage")
    total = len(list((ham_dir / "images").iterdir()))
    seg_json = tmp_path / "seg.json"
    result = runner.invoke(app, ["evaluate", "segment", "--images", str(images), "--masks", str(ham_dir / "masks"),
                                 "--bundle", str(tiny_bundle), "--json", str(seg_json)])
    assert result.exit_code == 0, result.output
    seg = json.loads(seg_json.read_text())
    assert seg["n"] == total and 0 <= seg["thresholded_jaccard"] <= seg["iou"] <= seg["dice"] <= 1
    assert [s["error"] for s in seg["skipped"]] == ["no mask for this image"]

    labels = tmp_path / "labels.csv"
    rows = list(csv.DictReader((ham_dir / "HAM10000_metadata.csv").open()))
    rows.append({**rows[0], "image_id": "ISIC_broken"})
    with labels.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cls_json, plots = tmp_path / "cls.json", tmp_path / "plots"
    result = runner.invoke(app, ["evaluate", "classify", "--images", str(images), "--labels", str(labels),
                                 "--bundle", str(tiny_bundle), "--json", str(cls_json), "--plots", str(plots)])
    assert result.exit_code == 0, result.output
    cls = json.loads(cls_json.read_text())
    assert cls["n"] == total  # the unreadable image is listed, not counted
    assert [s["path"] for s in cls["skipped"]] == [str(images / "ISIC_broken.jpg")]
    assert {"accuracy", "balanced_accuracy", "macro_auc", "ece", "per_class", "melanoma", "malignant"} <= set(cls)
    assert set(cls["per_class"]["mel"]) == {"precision", "recall", "f1", "auc", "support"}
    assert set(cls["malignant"]) == {"auc", "sensitivity", "specificity"}
    assert {p.name for p in plots.iterdir()} == {"confusion.png", "roc.png", "reliability.png", "coverage.png"}
    # The trust figures: calibration, inconclusive answers by reason, the coverage curve.
    assert {"ece_uncalibrated", "ece_calibrated", "temperature"} <= set(cls["calibration"])
    inconclusive = cls["inconclusive"]
    assert sum(inconclusive["by_reason"].values()) == round(inconclusive["rate"] * cls["n"])
    assert inconclusive["conclusive"]["n"] == cls["n"] - sum(inconclusive["by_reason"].values())
    curve = cls["coverage_curve"]
    assert curve[0]["coverage"] == 1.0 and curve[0]["accuracy"] == pytest.approx(cls["accuracy"], abs=1e-4)


def test_evaluate_binary_labels(tiny_bundle, ham_dir, tmp_path):
    rows = list(csv.DictReader((ham_dir / "HAM10000_metadata.csv").open()))
    labels = tmp_path / "binary.csv"
    labels.write_text("image_id,malignant\n" + "".join(
        f"{r['image_id']},{int(r['dx'] in ('mel', 'bcc', 'akiec'))}\n" for r in rows))
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["evaluate", "classify", "--images", str(ham_dir / "images"),
                                 "--labels", str(labels), "--bundle", str(tiny_bundle), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert set(json.loads(out.read_text())) >= {"n", "auc", "sensitivity", "specificity"}


def test_label_table_forms(tiny_bundle, tmp_path):
    isic = tmp_path / "isic.csv"
    isic.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nA,0,0,1,0,0,0,0\n")
    assert read_label_table(isic).targets == ["bcc"]
    split = tmp_path / "split.csv"
    split.write_text("image_id,lesion_id,label,split,image_path,mask_path\nA,L1,nv,train,a,\nB,L2,mel,test,b,\n")
    assert read_label_table(split).ids == ["B"]
    assert read_label_table(split, "train").targets == ["nv"]
    binary = tmp_path / "b.csv"
    binary.write_text("image,benign_malignant\nA,benign\nB,malignant\n")
    assert read_label_table(binary).targets == [0, 1]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\nA,nv\n")
    result = runner.invoke(app, ["evaluate", "classify", "--images", str(tmp_path), "--labels", str(bad),
                                 "--bundle", str(tiny_bundle)])
    assert result.exit_code == 2 and "columns not recognised" in result.output


def test_masks_out_holds_the_masks_the_crops_were_cut_from(tiny_bundle, folder, tmp_path):
    """`--masks-out` writes `<stem>_segmentation.png` masks that reproduce each result's crop box, so
    training on them (`train classify --masks DIR`) sees exactly the deployed framing."""
    out_json, masks = tmp_path / "r.json", tmp_path / "masks"
    result = runner.invoke(app, ["predict", str(folder), "--bundle", str(tiny_bundle), "--json", str(out_json),
                                 "--masks-out", str(masks), "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text())
    assert len(list(masks.glob("*_segmentation.png"))) == len(report["results"]) == 5
    margin = json.loads((tiny_bundle / "manifest.json").read_text())["crop_margin"]
    for record in report["results"]:
        mask = read_mask(masks / f"{Path(record['path']).stem}_segmentation.png")
        box = lesion_box(mask > 0, margin)
        assert (box.as_list() if box else None) == record["box"]
