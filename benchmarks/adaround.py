"""AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization") of a
Keras model's conv weights onto TFLite's int8 grid, followed by empirical bias correction: a probe of
whether better weight rounding lifts the classifier's int8 agreement beyond bias correction.

Why it is a benchmark and not an export option: on the validation crops it did not beat plain bias
correction (0.920 both), and it showed why: the model in float with the AdaRounded int8 weights already
agrees with float on 0.987 of crops, so most of the remaining int8 error is activation rounding, which
weight rounding cannot touch (docs/experiments.md, *int8 bias correction*).

For each conv in order (each one's folded BatchNorm scale included, per output channel, symmetric, max|w| /
127, as the converter rounds): the rounding of every weight (down, or up) is a soft variable optimised by
Adam so that the conv, fed its input from the model rounded so far, reproduces the original float
conv's output; a regulariser annealed from beta 20 to 2 pushes each variable to 0 or 1. The rounded
weights are written back divided by the BatchNorm scale, so the converter's folding lands them on the
grid it would pick, and the mean output error left is moved into the bias (BatchNorm moving mean).
"""

from __future__ import annotations

import numpy as np

from dermedge.export.bias_correction import conv_bn_pairs, folding_scale, int8_step, lower_bias
from dermedge.export.keras_io import flatten_classifier
from dermedge.train.tf_env import tensorflow

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)


def _conv(layer, x, kernel):
    tf = tensorflow()
    strides, padding = layer.strides, layer.padding.upper()
    if type(layer).__name__ == "DepthwiseConv2D":
        return tf.nn.depthwise_conv2d(x, kernel, [1, strides[0], strides[1], 1], padding)
    return tf.nn.conv2d(x, kernel, strides, padding)


def _outputs(model, tensor, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    tf = tensorflow()
    probe = tf.keras.Model(model.input, tensor)
    return np.concatenate([probe(images[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(images), batch_size)])


def _round_layer(conv, x, target, step, ratio, iterations, batch, lam, lr, seed) -> np.ndarray:
    """Integer weights (on the step grid) for one conv, from AdaRound's optimisation."""
    tf = tensorflow()
    floor = np.floor(ratio).astype(np.float32)
    rest = np.clip(ratio - floor, 1e-4, 1 - 1e-4)
    v = tf.Variable(-np.log((ZETA - GAMMA) / (rest - GAMMA) - 1).astype(np.float32))
    optimizer = tf.keras.optimizers.Adam(lr)
    floor_t, step_t = tf.constant(floor), tf.constant(step)

    def soft():
        return tf.clip_by_value(tf.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)

    @tf.function
    def update(xb, yb, beta, weight):
        with tf.GradientTape() as tape:
            h = soft()
            error = _conv(conv, xb, step_t * (floor_t + h)) - yb
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(error), axis=-1))
            loss += weight * tf.reduce_sum(1.0 - tf.pow(tf.abs(2.0 * h - 1.0), beta))
        optimizer.apply_gradients([(tape.gradient(loss, v), v)])

    rng = np.random.default_rng(seed)
    for it in range(iterations):
        pick = rng.choice(len(x), min(batch, len(x)), replace=False)
        warm = it < 0.2 * iterations  # reconstruction alone first, then the annealed regulariser
        beta = 20.0 - 18.0 * max(0.0, (it - 0.2 * iterations) / (0.8 * iterations))
        update(tf.constant(x[pick]), tf.constant(target[pick]), tf.constant(beta, tf.float32),
               tf.constant(0.0 if warm else lam, tf.float32))
    return np.clip(floor + (soft().numpy() >= 0.5), -127, 127)


def adarounded(model, images: np.ndarray, iterations: int = 600, batch: int = 8, lam: float = 0.01,
               lr: float = 1e-3):
    """A flat copy of `model` whose conv weights sit on the int8 grid, rounded by AdaRound on
    `images` (0..255 RGB), with empirical bias correction; returns (model, layers rounded)."""
    tf = tensorflow()
    original = flatten_classifier(model)
    rounded = tf.keras.models.clone_model(original)
    rounded.set_weights(original.get_weights())
    by_name = {layer.name: layer for layer in original.layers}
    images = images.astype(np.float32)
    pairs = conv_bn_pairs(rounded)
    for index, (conv, bn) in enumerate(pairs):
        depthwise = type(conv).__name__ == "DepthwiseConv2D"
        kernel = conv.get_weights()[0]
        scale = folding_scale(conv, bn)
        channel_axis = 2 if depthwise else 3  # depthwise kernels are (h, w, channels, 1)
        channel_shape = (1, 1, -1, 1) if depthwise else (1, 1, 1, -1)
        folded = kernel * scale.reshape(channel_shape)
        step = int8_step(folded, channel_axis).astype(np.float32)
        x = _outputs(rounded, conv.input, images)  # the input as the rounded model so far makes it
        target = _outputs(original, by_name[conv.name].output, images) * scale.reshape(1, 1, 1, -1)
        weights = _round_layer(conv, x, target, step, folded / step, iterations, batch, lam, lr, index) * step
        output = np.concatenate([_conv(conv, x[i:i + 32], weights).numpy() for i in range(0, len(x), 32)])
        live = np.abs(scale) > 1e-12
        safe = np.where(live, scale, 1.0).reshape(channel_shape)
        conv.set_weights([np.where(live.reshape(channel_shape), weights / safe, kernel).astype(kernel.dtype)]
                         + conv.get_weights()[1:])
        lower_bias(conv, bn, scale, (output - target).mean(axis=(0, 1, 2)))
    return rounded, len(pairs)
