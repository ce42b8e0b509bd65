"""Reshaping trained Keras models into what tfmot can transform (loading is `train.models`)."""

from __future__ import annotations


from dermedge.errors import DermedgeError
from dermedge.train.tf_env import tensorflow


def flatten_classifier(model):
    """The classifier with its nested backbone inlined, same weights.

    tfmot's pruning and quantization-aware training transform flat models only. Rebuilt from
    `build_classifier(flat=True)`, whose layer names match the nested form one for one; which
    backbone to rebuild is read off the model's own layers (`train.backbones.identify_backbone`).
    """
    tf = tensorflow()
    if not any(isinstance(layer, tf.keras.Model) for layer in model.layers):
        return model
    from dermedge.train.backbones import identify_backbone
    from dermedge.train.models import build_classifier

    flat = build_classifier(model.output_shape[-1], int(model.input_shape[1]), flat=True,
                            **identify_backbone(model))
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
