"""Reshaping trained Keras models into what tfmot can transform (loading is `train.models`)."""

from __future__ import annotations


from dermedge.errors import DermedgeError
from train.tf_env import tensorflow


def flatten_classifier(model):
    """The classifier with its nested MobileNetV2 backbone inlined, same weights.

    tfmot's pruning and quantization-aware training transform flat models only. Rebuilt from
    `build_classifier(flat=True)`, whose layer names match the nested form one for one.
    """
    tf = tensorflow()
    if not any(isinstance(layer, tf.keras.Model) for layer in model.layers):
        return model
    from train.models import build_classifier

    try:
        _, alpha, size = model.name.rsplit("_", 2)
        alpha, size = float(alpha), int(size)
    except ValueError as exc:
        raise DermedgeError(f"cannot flatten {model.name}: not a model built by `dermedge train classify`") from exc
    flat = build_classifier(model.output_shape[-1], size, alpha, None, flat=True)
    weights = {}
    for layer in model.layers:
        sublayers = layer.layers if isinstance(layer, tf.keras.Model) else [layer]
        for sub in sublayers:
            weights[sub.name] = sub.get_weights()
    for layer in flat.layers:
        if layer.weights:
            if layer.name not in weights:
                raise DermedgeError(f"cannot flatten {model.name}: no weights for layer {layer.name}")
            layer.set_weights(weights[layer.name])
    return flat
