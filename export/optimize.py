"""Model-to-model transformations with tensorflow-model-optimization: one verb each.

`prune` -> fine-tune -> `strip_pruning`; `quantization_aware` (ranges calibrated on
representative images) -> fine-tune. Both work on flat models (see `keras_io.flatten_classifier`)
and leave the first Rescaling layer in place, since the models normalise their own 0..255 input.
"""

from __future__ import annotations

import contextlib

import numpy as np

from dermedge.train.tf_env import tensorflow

MIN_PRUNABLE_WEIGHTS = 1024  # tiny kernels (first conv, depthwise 3x3) cost accuracy, save nothing


def _tfmot():
    tensorflow()
    import tensorflow_model_optimization as tfmot

    return tfmot


def prune(model, target_sparsity: float, total_steps: int):
    """Wrap every Conv2D/Dense with enough weights in `prune_low_magnitude`, with a polynomial
    schedule reaching `target_sparsity` at 70% of `total_steps` (the rest fine-tunes the mask)."""
    tf, tfmot = tensorflow(), _tfmot()
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=target_sparsity, begin_step=0,
        end_step=max(int(total_steps * 0.7), 1), frequency=max(total_steps // 20, 1),
    )

    def wrap(layer):
        prunable = isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)) and not isinstance(
            layer, tf.keras.layers.DepthwiseConv2D)
        if prunable and int(np.prod(layer.kernel.shape)) >= MIN_PRUNABLE_WEIGHTS:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer.__class__.from_config(layer.get_config())

    pruned = tf.keras.models.clone_model(model, clone_function=wrap)
    for src, dst in zip(model.layers, pruned.layers):
        target = dst.layer if hasattr(dst, "layer") and hasattr(dst, "pruning_vars") else dst
        target.set_weights(src.get_weights())
    return pruned


def pruning_callbacks():
    return [_tfmot().sparsity.keras.UpdatePruningStep()]


def strip_pruning(model):
    return _tfmot().sparsity.keras.strip_pruning(model)


def sparsity_report(model) -> dict:
    """Per-layer and total fraction of zero weights among kernels (biases and BN excluded)."""
    layers, zeros, total = {}, 0, 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        values = kernel.numpy()
        n_zero = int((values == 0).sum())
        layers[layer.name] = round(n_zero / values.size, 4)
        zeros += n_zero
        total += values.size
    return {"total": round(zeros / max(total, 1), 4), "kernel_weights": int(total), "per_layer": layers}


class _OutputOnlyQuantizeConfig:
    """Quantize only a layer's output: for the input Rescaling, which has no weights."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        tfmot = _tfmot()
        return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


def quantization_aware(model, calibration=None, batch_size: int = 32):
    """Insert fake-quantisation (tfmot's default 8-bit scheme) so fine-tuning learns int8.

    tfmot starts every activation range at -6..6 and moves it by an EMA with decay 0.999, so a
    short fine-tune leaves activations that reach |100| clipped (the classifier's linear
    bottlenecks and residual adds). With `calibration` images, every activation range is first
    set to the min/max of those images' activations, as TFLite's post-training calibration does,
    so fine-tuning starts from a model that already agrees with the float one. Weight ranges
    stay as tfmot makes them (last value), except that depthwise kernels get one range per
    channel, as TFLite gives them: tfmot's single range per depthwise kernel alone cost the
    classifier 0.96 -> 0.79 top-1 agreement with its float original. BatchNorm after a linear
    convolution is annotated too, so the fake-quant sits after BN as in the folded TFLite model.
    """
    tf, tfmot = tensorflow(), _tfmot()
    qk = tfmot.quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    config_class = type("OutputOnlyQuantizeConfig", (_OutputOnlyQuantizeConfig, qk.QuantizeConfig), {})
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()

    folded = _batchnorms_after_linear_conv(model)

    def annotate(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, tf.keras.layers.Rescaling):
            return qk.quantize_annotate_layer(copy, quantize_config=config_class())
        if registry.supports(layer) or layer.name in folded:
            return qk.quantize_annotate_layer(copy)
        return copy

    annotated = tf.keras.models.clone_model(model, clone_function=annotate)
    for src, dst in zip(model.layers, annotated.layers):
        (dst.layer if hasattr(dst, "quantize_config") else dst).set_weights(src.get_weights())
    scheme, custom_objects = _per_channel_depthwise_scheme()
    with qk.quantize_scope({"OutputOnlyQuantizeConfig": config_class, **custom_objects}):
        quantized = qk.quantize_apply(annotated, scheme=scheme)
    if calibration is not None:
        calibrate_activation_ranges(quantized, calibration, batch_size)
    return quantized


def _per_channel_depthwise_scheme():
    """tfmot's default 8-bit scheme with per-channel depthwise kernels. tfmot quantizes per
    last axis, which for a depthwise kernel (h, w, channels, 1) is one range for all channels;
    here the kernel is quantized as (h, w, 1, channels), so each channel gets its own."""
    tf, tfmot = tensorflow(), _tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras import quantizers
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registries, default_8bit_quantize_scheme as schemes)

    class DepthwiseChannelQuantizer(quantizers.LastValueQuantizer):
        def __init__(self, **_config):
            super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

        def build(self, tensor_shape, name, layer):
            channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
            return {bound: layer.add_weight(f"{name}_{bound[:3]}", shape=(channels,), trainable=False,
                                            initializer=tf.keras.initializers.Constant(start))
                    for bound, start in (("min_var", -6.0), ("max_var", 6.0))}

        def __call__(self, inputs, training, weights, **kwargs):
            shape = tf.shape(inputs)
            channels_last = tf.reshape(inputs, [shape[0], shape[1], 1, -1])
            # The base class by name, not super(): AutoGraph cannot convert a __class__ closure.
            quantized = quantizers.LastValueQuantizer.__call__(self, channels_last, training, weights, **kwargs)
            return tf.reshape(quantized, shape)

    class DepthwiseQuantizeConfig(registries.Default8BitConvQuantizeConfig):
        def __init__(self, **_config):
            super().__init__(["depthwise_kernel"], ["activation"], False)
            self.weight_quantizer = DepthwiseChannelQuantizer()

        def get_config(self):
            return {}

    class Scheme(schemes.Default8BitQuantizeScheme):
        def get_quantize_registry(self):
            registry = super().get_quantize_registry()
            registry._layer_quantize_map[tf.keras.layers.DepthwiseConv2D] = DepthwiseQuantizeConfig()
            return registry

    custom_objects = {"DepthwiseChannelQuantizer": DepthwiseChannelQuantizer,
                      "DepthwiseQuantizeConfig": DepthwiseQuantizeConfig}
    return Scheme(), custom_objects


def _batchnorms_after_linear_conv(model) -> set[str]:
    """BatchNorm layers that TFLite folds into the convolution before them. Annotated, they let
    tfmot's Conv+BN(+ReLU) transforms quantize after BN (and ReLU) as TFLite does; left out, the
    convolution's raw output, which BN then rescales, would be quantized instead."""
    tf = tensorflow()
    convolution = (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D)
    names = set()
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        sources = layer.inbound_nodes[0].inbound_layers
        source = sources[0] if isinstance(sources, list) else sources
        if isinstance(source, convolution) and source.get_config().get("activation") == "linear":
            names.add(layer.name)
    return names


def calibrate_activation_ranges(quantized, images, batch_size: int = 32):
    """Set every activation range of a `quantization_aware` model to the min/max its input takes
    on `images`: one eager inference pass in batches, BatchNorm and dropout in inference mode."""
    tf = tensorflow()
    with _activation_ranges_from_all_values():
        for start in range(0, len(images), batch_size):
            quantized(tf.constant(np.asarray(images[start:start + batch_size], np.float32)), training=False)
    return quantized


@contextlib.contextmanager
def _activation_ranges_from_all_values():
    """While open, tfmot's activation quantizers keep the running min/max of every value they
    see (tfmot's own AllValuesQuantize, forced to update even in inference mode) instead of an
    EMA from -6..6; each range restarts from 0..0 the first time it is seen, so ranges smaller
    than 6 do not stay at 6. Weight quantizers take their range from the current weights, as
    tfmot's LastValueQuantize does on every training step (until then they sit at -6..6).
    Patches tfmot internals (quant_ops), so eager calls only: a graph traced inside would keep
    the patch after the block closes."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    moving_average, all_values, last_value = (quant_ops.MovingAvgQuantize, quant_ops.AllValuesQuantize,
                                              quant_ops.LastValueQuantize)
    seen = set()

    def weight_range(*args, **kwargs):
        return last_value(*args, **{**kwargs, "is_training": True})

    def running_min_max(inputs, min_var, max_var, per_channel=False, num_bits=8, narrow_range=False,
                        symmetric=False, **_ignored):
        if per_channel:  # activations are per-tensor in the default 8-bit scheme; keep tfmot's way
            return moving_average(inputs, min_var, max_var, per_channel=True, num_bits=num_bits,
                                  narrow_range=narrow_range, symmetric=symmetric, is_training=False)
        if min_var.ref() not in seen:
            seen.add(min_var.ref())
            min_var.assign(np.zeros(min_var.shape, np.float32))
            max_var.assign(np.zeros(max_var.shape, np.float32))
        return all_values(inputs, min_var, max_var, is_training=True, num_bits=num_bits,
                          narrow_range=narrow_range, symmetric=symmetric)

    quant_ops.MovingAvgQuantize = quant_ops.AllValuesQuantize = running_min_max
    quant_ops.LastValueQuantize = weight_range
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize, quant_ops.AllValuesQuantize, quant_ops.LastValueQuantize = (
            moving_average, all_values, last_value)
