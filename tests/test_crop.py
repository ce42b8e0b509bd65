import numpy as np
import pytest

from dermedge.datasets import read_dataset, read_mask, read_rgb
from edge_runtime.preprocess import CropBox, crop_to_lesion, lesion_box


def _mask(h, w, box):
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.runtime
def test_box_is_square_with_margin_and_centred():
    box = lesion_box(_mask(150, 200, (80, 60, 120, 90)), margin=0.25)
    assert box.width == box.height == 60  # 40 px side * 1.5
    assert (box.x0 + box.x1) / 2 == 100 and (box.y0 + box.y1) / 2 == 75


@pytest.mark.runtime
def test_box_is_shifted_inside_the_image_not_shrunk():
    box = lesion_box(_mask(150, 200, (0, 0, 30, 30)), margin=0.5)
    assert (box.x0, box.y0) == (0, 0) and box.width == box.height == 60


@pytest.mark.runtime
def test_box_is_clipped_when_the_lesion_fills_the_image():
    box = lesion_box(_mask(150, 200, (10, 5, 190, 145)), margin=0.15)
    assert box == CropBox(0, 0, 200, 150)


@pytest.mark.runtime
def test_empty_mask_means_whole_image():
    image = np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    crop, box = crop_to_lesion(image, np.zeros((150, 200), bool), 64)
    assert box is None and crop.shape == (64, 64, 3)
    assert lesion_box(np.zeros((4, 4), bool)) is None


@pytest.mark.runtime
def test_low_resolution_mask_gives_the_same_box_as_full_resolution():
    """The U-Net's 128x128 mask and the image-size mask frame the lesion alike."""
    import cv2

    full = _mask(150, 200, (60, 40, 140, 110))
    small = cv2.resize(full.astype(np.uint8), (128, 128), interpolation=cv2.INTER_NEAREST)
    image = np.zeros((150, 200, 3), np.uint8)
    _, box_full = crop_to_lesion(image, full, 32)
    _, box_small = crop_to_lesion(image, small, 32)
    assert abs(box_full.x0 - box_small.x0) <= 2 and abs(box_full.y1 - box_small.y1) <= 2


def test_training_cuts_the_same_crops_as_the_runtime(ham_dir):
    pytest.importorskip("tensorflow")
    from dermedge.train.data import load_crop_arrays

    ds = read_dataset(ham_dir / "images", ham_dir / "HAM10000_metadata.csv", ham_dir / "masks")
    samples = ds.samples[:5]
    for colour in ("none", "shades-of-grey"):
        arrays = load_crop_arrays(samples, ds.classes, 48, margin=0.15, colour_constancy=colour)
        for sample, crop in zip(samples, arrays.images):
            expected, _ = crop_to_lesion(read_rgb(sample.image_path), read_mask(sample.mask_path), 48, 0.15, colour)
            np.testing.assert_array_equal(crop, expected)


def _lit(image: np.ndarray, light) -> np.ndarray:
    return np.clip(image.astype(np.float32) * np.array(light, np.float32), 0, 255).astype(np.uint8)


@pytest.mark.runtime
def test_shades_of_grey_takes_the_light_out_of_the_crop():
    """The same lesion under a warm and a cold dermatoscope light gives corrected crops of the same
    colours (chromaticity: each channel's share of the crop's mean; brightness may differ, as the
    correction keeps each light's strength), where the uncorrected crops' colours differ a lot; a
    black photo passes unchanged."""
    from edge_runtime.synthetic import draw_lesion

    image, mask = draw_lesion(np.random.default_rng(3), 200, 150, class_index=4)
    image = (image.astype(np.float32) * 0.7).astype(np.uint8)  # head room: no channel clips under the casts
    warm, cold = _lit(image, (1.25, 1.0, 0.75)), _lit(image, (0.8, 0.95, 1.3))
    (warm_plain, _), (cold_plain, _) = crop_to_lesion(warm, mask, 64), crop_to_lesion(cold, mask, 64)
    (warm_grey, box), (cold_grey, _) = (crop_to_lesion(x, mask, 64, colour_constancy="shades-of-grey")
                                        for x in (warm, cold))
    assert box == crop_to_lesion(warm, mask, 64)[1]  # the box does not move
    def colours(crop):
        mean = crop.reshape(-1, 3).mean(axis=0)
        return mean / mean.sum()

    assert np.abs(colours(warm_plain) - colours(cold_plain)).max() > 0.1
    assert np.abs(colours(warm_grey) - colours(cold_grey)).max() < 0.01
    black = np.zeros((150, 200, 3), np.uint8)
    np.testing.assert_array_equal(crop_to_lesion(black, mask, 32, colour_constancy="shades-of-grey")[0],
                                  crop_to_lesion(black, mask, 32)[0])
    with pytest.raises(ValueError, match="colour_constancy"):
        crop_to_lesion(image, mask, 32, colour_constancy="retinex")


@pytest.mark.runtime
def test_the_pipeline_corrects_the_crop_when_the_manifest_says_so(tmp_path):
    import json
    import shutil

    from edge_runtime.bundle import DEFAULT_BUNDLE, MANIFEST
    from edge_runtime.pipeline import Pipeline
    from edge_runtime.synthetic import draw_lesion

    image, mask = draw_lesion(np.random.default_rng(4), 200, 150, class_index=1)
    image = _lit(image, (1.2, 1.0, 0.8))
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["classifier"]["colour_constancy"] = "shades-of-grey"
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    corrected = Pipeline.load(bundle, num_threads=1).crop(image, mask)[0]
    np.testing.assert_array_equal(corrected, crop_to_lesion(image, mask, 224, 0.15, "shades-of-grey")[0])
    plain = Pipeline.load(num_threads=1).crop(image, mask)[0]
    assert np.abs(corrected.astype(int) - plain.astype(int)).mean() > 5
