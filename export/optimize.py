"""Model-to-model transformations with tensorflow-model-optimization: one verb each.

`prune` -> fine-tune -> `strip_pruning`; `quantization_aware` -> fine-tune. Both work on flat
models (see `keras_io.flatten_classifier`) and leave the first Rescaling layer in place, since the
models normalise their own 0..255 input.
"""

from __future__ import annotations

import numpy as np

from train.tf_env import tensorflow

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


def quantization_aware(model):
    """Insert fake-quantisation (tfmot's default 8-bit scheme) so fine-tuning learns int8."""
    tf, tfmot = tensorflow(), _tfmot()
    qk = tfmot.quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    config_class = type("OutputOnlyQuantizeConfig", (_OutputOnlyQuantizeConfig, qk.QuantizeConfig), {})
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()

    def annotate(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, tf.keras.layers.Rescaling):
            return qk.quantize_annotate_layer(copy, quantize_config=config_class())
        return qk.quantize_annotate_layer(copy) if registry.supports(layer) else copy

    annotated = tf.keras.models.clone_model(model, clone_function=annotate)
    for src, dst in zip(model.layers, annotated.layers):
        (dst.layer if hasattr(dst, "quantize_config") else dst).set_weights(src.get_weights())
    with qk.quantize_scope({"OutputOnlyQuantizeConfig": config_class}):
        return qk.quantize_apply(annotated)
