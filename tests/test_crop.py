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
    arrays = load_crop_arrays(samples, ds.classes, 48, margin=0.15)
    for sample, crop in zip(samples, arrays.images):
        expected, _ = crop_to_lesion(read_rgb(sample.image_path), read_mask(sample.mask_path), 48, 0.15)
        np.testing.assert_array_equal(crop, expected)
