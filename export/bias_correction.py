"""Bias correction of int8 weight rounding (Nagel et al. 2019, "Data-Free Quantization"), before
full-integer conversion.

Why: rounding a conv's weights to int8 moves its output by Δw · x, and on dermoscopy that error has a
large mean. Fine-tuned BatchNorm amplifies the stem and first depthwise channels of EfficientNet-Lite0
up to 55x (low-contrast skin gives those filters little variance to normalise), so after folding, a
rounding step of those weights times the near-constant local brightness is several int8 steps of the
activation (TFLite's QuantizationDebugger: 4 steps there, under 0.8 everywhere else). Shifting each
channel's bias by -E[Δw · x], with E[x] measured on the representative images, removes that mean: on
validation crops int8 top-1 agreement with float went from 0.899 to 0.920 (benchmarks/int8_agreement.py;
docs/experiments.md).

The converter folds BatchNorm into the conv and rounds per output channel, symmetric, to
max|w| / 127; this module simulates exactly that rounding and moves the bias (the BatchNorm's
moving mean, or the conv's own bias) so that the folded int8 model's mean output matches float.
The returned model is for integer conversion only: as a float model it is slightly off on purpose.
"""

from __future__ import annotations

import numpy as np

from dermedge.export.keras_io import flatten_classifier
from dermedge.train.tf_env import tensorflow

CONVS = ("Conv2D", "DepthwiseConv2D")


def conv_bn_pairs(model) -> list[tuple[object, object | None]]:
    """(conv, BatchNormalization reading it or None) for every conv whose bias can absorb a shift
    (depthwise convs with one filter per channel, as every backbone here has)."""
    readers = {}
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            readers[id(layer.input)] = layer
    pairs = []
    for layer in model.layers:
        if type(layer).__name__ in CONVS and getattr(layer, "depth_multiplier", 1) == 1:
            bn = readers.get(id(layer.output))
            if bn is not None or layer.use_bias:
                pairs.append((layer, bn))
    return pairs


def folding_scale(conv, bn) -> np.ndarray:
    """The per-output-channel factor the converter folds into `conv`'s kernel: its BatchNorm's
    gamma / sqrt(var + eps), or 1 without one."""
    if bn is not None:
        gamma, _, _, moving_var = bn.get_weights()
        return gamma / np.sqrt(moving_var + bn.epsilon)
    kernel = conv.get_weights()[0]
    return np.ones(kernel.shape[2] if type(conv).__name__ == "DepthwiseConv2D" else kernel.shape[3], kernel.dtype)


def int8_step(folded: np.ndarray, channel_axis: int) -> np.ndarray:
    """TFLite's per-channel symmetric int8 step of `folded` weights, max|w| / 127 (keepdims)."""
    axes = tuple(a for a in range(folded.ndim) if a != channel_axis % folded.ndim)
    step = np.abs(folded).max(axis=axes, keepdims=True) / 127.0
    return np.where(step > 0, step, 1.0)


def lower_bias(conv, bn, scale: np.ndarray, shift: np.ndarray) -> None:
    """Lower the folded bias of `conv` by `shift` per output channel: through its BatchNorm's moving
    mean (the folded bias is beta - moving_mean * scale) or its own bias."""
    if bn is None:
        weights = conv.get_weights()
        conv.set_weights([weights[0], (weights[1] - shift).astype(weights[1].dtype)])
        return
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    live = np.abs(scale) > 1e-12
    moving_mean = np.where(live, moving_mean + shift / np.where(live, scale, 1.0), moving_mean)
    bn.set_weights([gamma, beta, moving_mean.astype(gamma.dtype), moving_var])


def _rounding_error(folded: np.ndarray, channel_axis: int) -> np.ndarray:
    """int8 per-channel symmetric rounding error of `folded` weights (TFLite's scheme)."""
    step = int8_step(folded, channel_axis)
    return np.round(folded / step) * step - folded


def _input_means(model, pairs, images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Mean of each conv's input per channel over the images (and every position)."""
    tf = tensorflow()
    probe = tf.keras.Model(model.input, [conv.input for conv, _ in pairs])
    sums = [0.0] * len(pairs)
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size].astype(np.float32), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for i, out in enumerate(outputs):
            sums[i] = sums[i] + out.numpy().mean(axis=(1, 2)).sum(axis=0)
    return [s / len(images) for s in sums]


def bias_corrected(model, images: np.ndarray, batch_size: int = 16):
    """A flat copy of a Keras model (a nested backbone inlined) whose biases cancel the mean int8
    weight-rounding error on `images` (0..255 RGB, as the model takes them); returns (model, layers
    corrected)."""
    tf = tensorflow()
    flat = flatten_classifier(model)
    corrected = tf.keras.models.clone_model(flat)
    corrected.set_weights(flat.get_weights())
    pairs = conv_bn_pairs(corrected)
    if not pairs:
        return corrected, 0
    means = _input_means(corrected, pairs, images, batch_size)
    for (conv, bn), mean_in in zip(pairs, means):
        kernel = conv.get_weights()[0]
        scale = folding_scale(conv, bn)
        if type(conv).__name__ == "DepthwiseConv2D":  # (h, w, channels, 1): one filter per channel
            error = _rounding_error(kernel[..., 0] * scale, channel_axis=-1)
            shift = np.einsum("hwc,c->c", error, mean_in)
        else:  # (h, w, in, out)
            error = _rounding_error(kernel * scale, channel_axis=-1)
            shift = np.einsum("hwio,i->o", error, mean_in)
        lower_bias(conv, bn, scale, shift)
    return corrected, len(pairs)
