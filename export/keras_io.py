"""Loading trained Keras models safely, and reshaping them into what tfmot can transform."""

from __future__ import annotations

from pathlib import Path

from dermedge.errors import DermedgeError
from train.tf_env import tensorflow


def load_model(path: str | Path, role: str):
    """Load a `.keras` file with Keras' safe mode (no arbitrary code) and check its shape.

    `role` is "segmenter" (image -> one-channel mask of the same size) or "classifier"
    (image -> class probabilities).
    """
    tf = tensorflow()
    path = Path(path)
    if not path.is_file():
        raise DermedgeError(f"{role} model not found: {path}")
    from train.losses import CUSTOM_OBJECTS

    try:
        model = tf.keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False,
                                           safe_mode=True)
    except Exception as exc:  # Keras raises many types for a file that is not a model
        raise DermedgeError(f"{path} is not a loadable Keras model ({type(exc).__name__}); "
                            f"pass the .keras file that `dermedge train` wrote") from exc
    check_shapes(model, role, path)
    return model


def check_shapes(model, role: str, path: Path | str = "model") -> None:
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise DermedgeError(f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
    in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 3:
        raise DermedgeError(f"{path}: input must be (batch, height, width, 3) RGB, got {in_shape}")
    if role == "segmenter" and (len(out_shape) != 4 or out_shape[1:3] != in_shape[1:3] or out_shape[-1] != 1):
        raise DermedgeError(f"{path}: a segmenter must output a (batch, {in_shape[1]}, {in_shape[2]}, 1) "
                            f"mask, got {out_shape}; is this the classifier?")
    if role == "classifier" and len(out_shape) != 2:
        raise DermedgeError(f"{path}: a classifier must output (batch, classes), got {out_shape}; "
                            "is this the segmenter?")


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
