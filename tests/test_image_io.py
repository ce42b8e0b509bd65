"""Whatever file a user points at, reading it gives RGB uint8 or one clear ImageError."""

import json
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.image_io import ImageError, decode_image, find_images, header_size, is_mask_file, read_image
from synthetic_data import make_ham10000, make_ph2


def _png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


@pytest.fixture
def picture():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)


@pytest.mark.runtime
def test_common_forms_become_rgb8(tmp_path, picture):
    bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), picture)
    cv2.imwrite(str(tmp_path / "gray.png"), bgr[..., 0])
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 257)
    for name in ("gray.png", "rgba.png", "deep.png"):
        image = read_image(tmp_path / name)
        assert image.shape == (30, 40, 3) and image.dtype == np.uint8, name
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), picture)


def test_exif_orientation_and_cmyk(tmp_path, picture):
    Image = pytest.importorskip("PIL.Image")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(picture).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "rotated.jpg").shape == (40, 30, 3)
    Image.fromarray(picture).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "cmyk.jpg").shape == (30, 40, 3)


@pytest.mark.runtime
@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"this is text, not a picture", "not a readable image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not a readable image"),  # truncated JPEG
    (_png_header(100_000, 100_000), "pixel limit"),  # a decompression bomb's header
])
def test_bad_files_raise_one_clear_error(tmp_path, content, reason):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        read_image(path)


@pytest.mark.runtime
def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


@pytest.mark.runtime
def test_header_size_reads_jpeg_and_png(picture):
    ok, jpg = cv2.imencode(".jpg", picture)
    assert header_size(jpg.tobytes()) == (40, 30)
    assert header_size(_png_header(7, 5)) == (7, 5)
    with pytest.raises(ImageError, match="pixel limit"):
        decode_image(jpg.tobytes(), max_pixels=100)


@pytest.mark.runtime
def test_find_images_expands_folders_and_globs(tmp_path, picture):
    for name in ("b.jpg", "a.png", "sub/c.jpg", "notes.txt", "a_segmentation.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found, problems = find_images([tmp_path, str(tmp_path / "*.jpg"), tmp_path / "missing.jpg"])
    assert [p.name for p in found] == ["a.png", "b.jpg", "c.jpg"]
    assert problems == [(str(tmp_path / "missing.jpg"), "no such file or folder")]


def _ph2_with_rois(root):
    """The synthetic PH2 tree plus the ROI masks the real one has (IMDxxx_roi/IMDxxx_R1_Label4.bmp)."""
    make_ph2(root)
    for case in sorted((root / "PH2Dataset" / "PH2 Dataset images").iterdir()):
        roi = case / f"{case.name}_roi"
        roi.mkdir()
        shutil.copy(case / f"{case.name}_lesion" / f"{case.name}_lesion.bmp", roi / f"{case.name}_R1_Label4.bmp")
    return root


@pytest.mark.runtime
def test_find_images_leaves_out_the_masks_of_known_layouts(tmp_path):
    ph2 = _ph2_with_rois(tmp_path / "ph2")
    ham = make_ham10000(tmp_path / "ham", lesions_per_class=1, images_per_lesion=1)
    shutil.copy(next((ham / "masks").glob("*.png")), ham / "images" / "ISIC_0000000_Segmentation.png")  # ISIC 2016
    photos = sorted(p.name for p in (ph2 / "PH2Dataset").rglob("IMD???.bmp"))
    assert len(photos) == 4

    found, problems = find_images([ph2])
    assert sorted(p.name for p in found) == photos and problems == []
    found, _ = find_images([str(ph2 / "**" / "*.bmp")])  # a glob over the tree: photos only as well
    assert sorted(p.name for p in found) == photos
    found, _ = find_images([ham])
    assert found and all(p.parent.name == "images" for p in found)  # no HAM10000 / ISIC 2016 mask

    mask = next((ph2 / "PH2Dataset").rglob("IMD002_lesion.bmp"))
    assert find_images([mask]) == ([mask], [])  # named explicitly: taken as asked
    pattern = str(ph2 / "**" / "*_lesion.bmp")
    assert find_images([pattern]) == ([], [(pattern, "matches only lesion masks (e.g. *_segmentation.png), not photos")])
    for path in ("IMD002_lesion/IMD002_lesion.bmp", "IMD002_roi/IMD002_R1_Label4.bmp", "x/IMD002_roi.bmp",
                 "masks/ISIC_0024306_segmentation.png", "ISIC_0000001_Segmentation.PNG"):
        assert is_mask_file(path), path
    for path in ("IMD002_Dermoscopic_Image/IMD002.bmp", "ISIC_0024306.jpg", "my_lesion.jpg", "lesion.bmp"):
        assert not is_mask_file(path), path


@pytest.mark.runtime
def test_predict_on_a_ph2_root_classifies_the_photos_only(tmp_path):
    from typer.testing import CliRunner

    from dermedge.commands.cli import app

    ph2 = _ph2_with_rois(tmp_path / "ph2")
    out = tmp_path / "predictions.json"
    result = CliRunner().invoke(app, ["predict", str(ph2), "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert sorted(Path(r["path"]).name for r in report["results"]) == ["IMD002.bmp", "IMD003.bmp", "IMD004.bmp",
                                                                       "IMD005.bmp"]
    assert report["skipped"] == []
