"""Training inputs: decode once into memory-resident uint8 arrays, then augment with tf.data.

HAM10000 at 200x150 fits in memory many times over, so decoding once and augmenting on the fly
keeps the two CPU cores busy with the model instead of JPEG decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from rich.progress import Progress

from dermedge.datasets import Sample, read_mask, read_rgb
from edge_runtime.preprocess import DEFAULT_CROP_MARGIN, crop_to_lesion
from dermedge.train.tf_env import tensorflow


@dataclass
class ArrayData:
    """Decoded samples; `kept` are the samples that decoded, `failed` the ones that did not."""

    images: np.ndarray
    targets: np.ndarray
    kept: list[Sample]
    failed: list[str]


def _decode_all(samples: list[Sample], describe: str, convert) -> ArrayData:
    images, targets, kept, failed = [], [], [], []
    with Progress(transient=True) as progress:
        task = progress.add_task(describe, total=len(samples))
        for sample in samples:
            image = read_rgb(sample.image_path)
            mask = read_mask(sample.mask_path) if sample.mask_path else None
            if image is None or (sample.mask_path and mask is None):
                failed.append(f"{sample.image_id}: unreadable image or mask")
            else:
                x, y = convert(sample, image, mask)
                images.append(x)
                targets.append(y)
                kept.append(sample)
            progress.advance(task)
    if not images:
        raise ValueError(f"none of {len(samples)} images could be read")
    return ArrayData(np.stack(images), np.stack(targets), kept, failed)


def load_segmentation_arrays(samples: list[Sample], size: int) -> ArrayData:
    """Images resized to size x size (uint8 RGB) and their masks (uint8 0/1, size x size x 1)."""

    def convert(sample, image, mask):
        x = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        y = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        return x, y[..., None]

    return _decode_all(samples, f"decoding {len(samples)} images + masks", convert)


def load_lesion_free_arrays(samples: list[Sample], size: int, count: int, seed: int = 0) -> ArrayData:
    """`count` lesion-free training images (uint8 RGB, size x size) with empty masks, cut from the
    given photos: a random lesion-free window of a photo (0.35..0.7 of its sides, its aspect kept,
    at least 4 px clear of the lesion) or the whole photo with its lesion painted out
    (`cv2.inpaint`, lesions under 15% of the photo only, where the fill stays plausible skin),
    alternately where a photo allows both.

    Why: HAM10000 has no lesion-free photo, so a segmenter fitted to it alone learns that every
    frame holds a lesion, and a camera over bare skin reports a phantom one. Photos that yield
    neither are skipped; fewer than `count` may come back from few photos."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    dilate = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    images, kept = [], []
    for n, index in enumerate(order):
        if len(images) >= count:
            break
        sample = samples[index]
        image, mask = read_rgb(sample.image_path), read_mask(sample.mask_path) if sample.mask_path else None
        if image is None or mask is None:
            continue
        near_lesion = cv2.dilate(mask.astype(np.uint8), dilate)
        window, painted = _lesion_free_window(image, near_lesion, rng), _painted_out(image, near_lesion)
        skin = window if window is not None and (n % 2 == 0 or painted is None) else painted
        if skin is not None:
            images.append(cv2.resize(skin, (size, size), interpolation=cv2.INTER_AREA))
            kept.append(sample)
    if not images:
        return ArrayData(np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size, 1), np.uint8), [], [])
    return ArrayData(np.stack(images), np.zeros((len(images), size, size, 1), np.uint8), kept, [])


def _lesion_free_window(image: np.ndarray, near_lesion: np.ndarray, rng) -> np.ndarray | None:
    """A random window of the photo's aspect that holds no pixel of `near_lesion`, or None."""
    h, w = near_lesion.shape
    fraction = rng.uniform(0.35, 0.7)
    wh, ww = max(int(h * fraction), 8), max(int(w * fraction), 8)
    inside = cv2.integral(near_lesion)  # (h+1, w+1) running sums: a window's sum in 4 lookups
    sums = inside[wh:, ww:] - inside[:-wh, ww:] - inside[wh:, :-ww] + inside[:-wh, :-ww]
    free = np.argwhere(sums == 0)
    if not len(free):
        return None
    y, x = free[rng.integers(len(free))]
    return image[y:y + wh, x:x + ww]


def _painted_out(image: np.ndarray, near_lesion: np.ndarray, max_area: float = 0.15) -> np.ndarray | None:
    """The photo with its (dilated) lesion filled from the surrounding skin, or None if too large."""
    if near_lesion.mean() > max_area:
        return None
    return cv2.inpaint(image, near_lesion * 255, 7, cv2.INPAINT_TELEA)


def concatenate_arrays(first: ArrayData, second: ArrayData) -> ArrayData:
    return ArrayData(np.concatenate([first.images, second.images]), np.concatenate([first.targets, second.targets]),
                     first.kept + second.kept, first.failed + second.failed)


def load_crop_arrays(
    samples: list[Sample], classes: tuple[str, ...], size: int, margin: float = DEFAULT_CROP_MARGIN,
    colour_constancy: str = "none",
) -> ArrayData:
    """Lesion crops cut with the ground-truth mask by the runtime's own crop function."""
    index = {c: i for i, c in enumerate(classes)}

    def convert(sample, image, mask):
        crop, _ = crop_to_lesion(image, mask, size, margin, colour_constancy)
        return crop, index[sample.label]

    return _decode_all(samples, f"cropping {len(samples)} lesions", convert)


def jitter_context(size: int, margin: float, jitter: float) -> tuple[int, float]:
    """(side, margin) of a context crop that holds the deployed crop (`size`, `margin`) grown by
    `jitter`, so that random squares of it frame the lesion `jitter` tighter or looser.

    Why: at deployment the box comes from the U-Net's mask, never exactly the ground truth's, and
    a classifier that only ever saw the exact framing (or tighter) flips answers on small changes.
    """
    if not jitter:
        return size, margin
    grown = (1.0 + 2.0 * margin) * (1.0 + jitter)
    return int(round(size * (1.0 + jitter))), (grown - 1.0) / 2.0


def _random_zoom(tf, image, min_fraction: float, out_size=None):
    """Crop a random square of min_fraction..1 of the side and resize it to `out_size` (default:
    the input's side): scale + shift."""
    size = tf.shape(image)[0]
    fraction = tf.random.uniform([], min_fraction, 1.0)
    side = tf.cast(tf.cast(size, tf.float32) * fraction, tf.int32)
    channels = tf.shape(image)[-1]
    patch = tf.image.random_crop(image, tf.stack([side, side, channels]))
    out = size if out_size is None else out_size
    return tf.image.resize(patch, tf.stack([out, out]), method="bilinear")


def _flip_rotate(tf, image):
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_flip_up_down(image)
    return tf.image.rot90(image, tf.random.uniform([], 0, 4, dtype=tf.int32))


def _free_rotation(tf, image):
    """Rotate by a uniform angle about the centre, reflecting at the borders.

    Why: a lesion under a dermatoscope has no "up"; quarter turns and flips give only 8 of its
    orientations, and a model that saw every angle should not learn the grid's axes."""
    side = tf.cast(tf.shape(image)[0], tf.float32)
    angle = tf.random.uniform([], -math.pi, math.pi)
    cos, sin = tf.cos(angle), tf.sin(angle)
    centre = (side - 1.0) / 2.0
    # output pixel (x, y) reads input (cos x - sin y + dx, sin x + cos y + dy): a turn about the centre
    dx = centre - cos * centre + sin * centre
    dy = centre - sin * centre - cos * centre
    transform = tf.stack([cos, -sin, dx, sin, cos, dy, 0.0, 0.0])[None]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=tf.shape(image)[:2], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")[0]


def _color_jitter(tf, image, hue: float = 0.03):
    """Brightness/contrast/saturation/hue jitter on a 0..255 float image."""
    x = image / 255.0
    x = tf.image.random_brightness(x, 0.12)
    x = tf.image.random_contrast(x, 0.8, 1.2)
    x = tf.image.random_saturation(x, 0.8, 1.2)
    if hue:
        x = tf.image.random_hue(x, hue)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


SEGMENTATION_AUGMENTATIONS = ("basic", "device")


def _random_zoom_out(tf, both, min_scale: float = 0.6):
    """Shrink image and mask together to 0.6..1 of the side and reflect-pad back: the lesion as a
    dermatoscope of lower magnification frames it."""
    size = tf.shape(both)[0]
    side = tf.cast(tf.cast(size, tf.float32) * tf.random.uniform([], min_scale, 1.0), tf.int32)
    small = tf.image.resize(both, tf.stack([side, side]), method="bilinear")
    before = (size - side) // 2
    after = size - side - before
    return tf.pad(small, tf.stack([[before, after], [before, after], [0, 0]]), mode="REFLECT")


def _gaussian_blur(tf, image, sigma):
    """A 5x5 Gaussian blur of one HxWx3 image (defocus)."""
    taps = tf.range(-2.0, 3.0)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    kernel = (kernel[:, None] * kernel[None, :])[:, :, None, None] * tf.ones([1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]


def _device_jitter(tf, image, mask):
    """What another dermatoscope changes, on a 0..255 float image and its 0/1 mask: a colour cast
    (per-channel gains), uneven light (a gradient), vignetting, half the time a dark circular frame
    (the lesion under it is not visible, so the mask is cut too), and a third of the time defocus."""
    size = tf.shape(image)[0]
    grid = tf.linspace(-1.0, 1.0, size)
    yy, xx = tf.meshgrid(grid, grid, indexing="ij")
    image = image * tf.random.uniform([3], 0.8, 1.2)
    angle = tf.random.uniform([], 0.0, 2.0 * math.pi)
    light = 1.0 + tf.random.uniform([], 0.0, 0.2) * (tf.cos(angle) * xx + tf.sin(angle) * yy)
    radius = tf.sqrt(tf.square(xx) + tf.square(yy))
    light = light * (1.0 - tf.random.uniform([], 0.0, 0.3) * tf.square(radius) / 2.0)
    image = image * light[..., None]
    if tf.random.uniform([]) < 0.5:
        frame = tf.random.uniform([], 0.85, 1.35)  # the visible circle's radius, in half sides
        visible = tf.clip_by_value((frame - radius) / 0.05, 0.0, 1.0)[..., None]
        image = image * visible + 8.0 * (1.0 - visible)
        mask = mask * tf.cast(visible > 0.5, tf.float32)
    if tf.random.uniform([]) < 0.33:
        image = _gaussian_blur(tf, image, tf.random.uniform([], 0.5, 1.5))
    return tf.clip_by_value(image, 0.0, 255.0), mask


def mix_batches(ds, alpha: float, class_weights: np.ndarray | None = None, seed: int = 0):
    """Mixup: each image of a batch blended with the batch's image in the mirrored position,
    targets blended alike, lambda ~ Beta(alpha, alpha) per image.

    Why: a soft, linear path between lesions discourages the overconfident fit to `nv` that longer
    schedules drift into. lambda is folded to >= 0.5, so each mixed image keeps its own label as
    the larger share. Batches come out as (x, target, sample weight): the weight is the mixed
    target's share of `class_weights` (one weight per class) or 1, replacing Keras' class_weight,
    which would weigh a mixed image by its larger class only."""
    tf = tensorflow()
    weights = None if class_weights is None else tf.constant(class_weights, tf.float32)

    def mix(x, y):
        n = tf.shape(x)[0]
        a = tf.random.gamma([n], alpha, seed=seed)
        b = tf.random.gamma([n], alpha, seed=seed + 1)
        lam = a / tf.maximum(a + b, 1e-12)
        lam = tf.maximum(lam, 1.0 - lam)
        x = lam[:, None, None, None] * x + (1.0 - lam[:, None, None, None]) * tf.reverse(x, [0])
        y = lam[:, None] * y + (1.0 - lam[:, None]) * tf.reverse(y, [0])
        w = tf.ones([n]) if weights is None else tf.reduce_sum(y * weights, axis=1)
        return x, y, w

    return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def segmentation_dataset(data: ArrayData, batch_size: int, augment: bool, seed: int = 0,
                         augmentation: str = "basic"):
    """(image 0..255 float, mask 0/1 float) batches; geometry is applied to both together.
    `augmentation` "device" adds `_random_zoom_out` and `_device_jitter` to the basic set."""
    tf = tensorflow()
    if augmentation not in SEGMENTATION_AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {SEGMENTATION_AUGMENTATIONS}, got {augmentation!r}")
    images = tf.constant(data.images)
    masks = tf.constant(data.targets)
    n = len(data.images)
    device = augmentation == "device"

    def load(i):
        x = tf.cast(tf.gather(images, i), tf.float32)
        y = tf.cast(tf.gather(masks, i), tf.float32)
        if augment:
            both = tf.concat([x, y * 255.0], axis=-1)
            both = _flip_rotate(tf, both)
            both = _random_zoom(tf, both, 0.85)
            if device and tf.random.uniform([]) < 0.3:
                both = _random_zoom_out(tf, both)
            x, y = both[..., :3], tf.cast(both[..., 3:] > 127.5, tf.float32)
            x = _color_jitter(tf, x, hue=0.0)
            if device:
                x, y = _device_jitter(tf, x, y)
        return x, y

    ds = tf.data.Dataset.range(n)
    if augment:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)


def classification_dataset(
    data: ArrayData,
    num_classes: int,
    batch_size: int,
    augment: bool,
    sample_indices: np.ndarray | None = None,
    out_size: int | None = None,
    jitter: float = 0.0,
    soft_targets: np.ndarray | None = None,
    free_rotation: bool = False,
):
    """(crop 0..255 float, one-hot) batches. `sample_indices` fixes the order (balanced sampling);
    `soft_targets` (n x classes, rows summing to 1) replace the one-hot labels (distillation).

    With `jitter` > 0 the arrays are context crops from `jitter_context`: augmentation cuts a random
    square of 1-jitter..1+jitter times the deployed framing, shifted, and resizes it to `out_size`.
    Without, it zooms into the crop (0.8..1 of its side). `free_rotation` adds `_free_rotation`."""
    tf = tensorflow()
    images = tf.constant(data.images)
    labels = (tf.constant(soft_targets, tf.float32) if soft_targets is not None
              else tf.one_hot(tf.constant(data.targets, tf.int32), num_classes))
    n = len(data.images)
    min_fraction = (1.0 - jitter) / (1.0 + jitter) if jitter else 0.8

    def load(i):
        x = tf.cast(tf.gather(images, i), tf.float32)
        if augment:
            x = _flip_rotate(tf, x)
            if free_rotation:
                x = _free_rotation(tf, x)
            x = _random_zoom(tf, x, min_fraction, out_size=out_size)
            x = _color_jitter(tf, x)
        elif out_size is not None:
            x = tf.image.resize(x, [out_size, out_size], method="bilinear")
        return x, tf.gather(labels, i)

    if sample_indices is not None:
        ds = tf.data.Dataset.from_tensor_slices(sample_indices.astype(np.int64))
    else:
        ds = tf.data.Dataset.range(n)
        if augment:
            ds = ds.shuffle(n, reshuffle_each_iteration=True)
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)
