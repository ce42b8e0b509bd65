"""Model builders. Every model takes RGB pixels in 0..255 and normalises inside itself, so an
exported model is fed camera bytes directly and the normalisation cannot drift from training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermedge.errors import DermedgeError
from dermedge.train.tf_env import tensorflow

SEGMENTER_DECODERS = ("unet", "fcn")
SEGMENTER_ENCODERS = ("none", "mobilenetv2", "efficientnet-lite0")  # "none": trained from scratch
# The pretrained encoders' skips: features at these strides; the deepest is the decoder's start.
ENCODER_STRIDES = (2, 4, 8, 16)
# Names of the layers the U-Net adds around a pretrained encoder; every other layer is the encoder's
# (what the frozen-encoder warm-up freezes).
DECODER_PREFIXES = ("normalize", "up", "skip", "dec", "mask")


def _conv_block(keras, x, filters: int, name: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_segmenter(
    input_size: int = 128,
    base_filters: int = 8,
    depth: int = 4,
    max_filters: int = 64,
    decoder: str = "unet",
    encoder: str = "none",
    encoder_weights: str | Path | None = None,
    skip_projection: bool = False,
):
    """A U-Net (or FCN-8s-style decoder) of `depth` poolings, doubling from `base_filters` up to
    `max_filters`. The defaults (~0.36M parameters) are sized for a phone: capping the deep
    layers' width saves most of the parameters at almost no cost, since lesions are large blobs.

    `encoder` other than "none" replaces the encoder with a classifier backbone of the registry
    (`train.backbones`), ImageNet-initialised from `encoder_weights`: its features at strides 2, 4,
    8 and 16 (`pretrained_pyramid`), the deepest feeding the decoder and the others its skips; the
    decoder is the same (depth 4, no skip at full resolution). Why: an encoder that has seen a
    million photos holds up better on another clinic's dermatoscope than one fitted to 7,000
    HAM10000 images.

    `skip_projection` (pretrained encoders only) narrows each skip to the decoder's width at that
    level with a 1x1 conv before the concatenation. Why: the skips are expansion activations (96,
    144, 240 channels for Lite0), and the 3x3 convs that read them cost 163 of the Lite0 U-Net's
    363 MMACs at 128 px; projected, the decoder costs about 70 (DeepLabv3+ reduces its low-level
    features the same way).

    Upsampling is nearest-neighbour + 3x3 conv, not Conv2DTranspose: prune-preserving
    quantization-aware training rejects Conv2DTranspose, and this keeps every export path open.
    """
    tf = tensorflow()
    keras = tf.keras
    if decoder not in SEGMENTER_DECODERS:
        raise DermedgeError(f"unknown decoder {decoder!r}: use {' or '.join(SEGMENTER_DECODERS)}")
    if encoder not in SEGMENTER_ENCODERS:
        raise DermedgeError(f"unknown encoder {encoder!r}: use {', '.join(SEGMENTER_ENCODERS)}")
    if encoder != "none" and decoder != "unet":
        raise DermedgeError(f"a pretrained encoder ({encoder}) takes the unet decoder")
    if skip_projection and encoder == "none":
        raise DermedgeError("--skip-projection narrows a pretrained encoder's skips: name an --encoder")
    depth = depth if encoder == "none" else len(ENCODER_STRIDES)
    if input_size % (2**depth):
        raise DermedgeError(f"input size {input_size} must be divisible by 2**depth = {2**depth}")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    width = [min(base_filters * 2**level, max_filters) for level in range(depth + 1)]
    if encoder == "none":
        x = keras.layers.Rescaling(1.0 / 255.0, name="normalize")(inputs)
        skips = []
        for level in range(depth):
            x = _conv_block(keras, x, width[level], f"enc{level}")
            skips.append(x)
            x = keras.layers.MaxPooling2D(name=f"pool{level}")(x)
        x = _conv_block(keras, x, width[depth], "bottleneck")
    else:
        *pyramid, x = pretrained_pyramid(keras, inputs, encoder, encoder_weights)
        skips = [None, *pyramid]  # full resolution has no encoder feature
    if decoder == "unet":
        for level in reversed(range(depth)):
            filters = width[level]
            x = keras.layers.UpSampling2D(name=f"up{level}")(x)
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"up{level}_conv")(x)
            if skips[level] is not None:
                skip = skips[level]
                if skip_projection:
                    skip = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"skip{level}_proj")(skip)
                    skip = keras.layers.BatchNormalization(name=f"skip{level}_proj_bn")(skip)
                    skip = keras.layers.ReLU(name=f"skip{level}_proj_relu")(skip)
                x = keras.layers.Concatenate(name=f"skip{level}")([x, skip])
            x = _conv_block(keras, x, filters, f"dec{level}")
    else:
        # FCN-8s: class scores from the deepest three scales, upsampled and summed.
        score = keras.layers.Conv2D(1, 1, name="score_bottleneck")(x)
        for level in reversed(range(max(depth - 2, 0), depth)):
            score = keras.layers.UpSampling2D(name=f"score_up{level}")(score)
            skip_score = keras.layers.Conv2D(1, 1, name=f"score_enc{level}")(skips[level])
            score = keras.layers.Add(name=f"score_add{level}")([score, skip_score])
        factor = input_size // score.shape[1]
        x = keras.layers.UpSampling2D(factor, interpolation="bilinear", name="score_up_full")(score)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="refine")(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    name = decoder if encoder == "none" else f"{decoder}_{encoder.replace('-', '_')}"
    name += "_proj" if skip_projection else ""
    return keras.Model(inputs, outputs, name=f"{name}_d{depth}_f{base_filters}_{input_size}")


def _weights_source(weights: str | Path | None, role: str) -> str | None:
    """A backbone's initial weights as the builders take them: None (or "none") for random, "imagenet"
    for its own source, else a local file, which must exist."""
    weights = str(weights) if weights and str(weights) != "none" else None
    if weights and weights != "imagenet" and not Path(weights).is_file():
        raise DermedgeError(f"{role} weights not found: {weights}")
    return weights


def pretrained_pyramid(keras, inputs, encoder: str, weights: str | Path | None) -> list:
    """The backbone `encoder` applied inline to `inputs` (its own normalisation first, as a layer
    named "normalize"), and its feature maps at `ENCODER_STRIDES`.

    The skips (every stride but the deepest) are the last expansion activation at that resolution,
    the richest features there (for MobileNetV2 block_1/3/6_expand_relu, as the Keras segmentation
    examples take); the deepest is the last block output at its stride, before the next stage's
    expansion (6x wider: taking it would triple EfficientNet-Lite0's decoder). Layers past the
    deepest are left out of the model."""
    from dermedge.train.backbones import get_backbone

    spec = get_backbone(encoder)
    weights = _weights_source(weights, "encoder")
    size = int(inputs.shape[1])
    if size % ENCODER_STRIDES[-1]:
        raise DermedgeError(f"input size {size} must be divisible by {ENCODER_STRIDES[-1]} for a pretrained encoder")
    scale, offset = spec.normalization
    x = keras.layers.Rescaling(scale, offset=offset, name="normalize")(inputs)
    if spec.is_lite:
        net = _lite_backbone(keras, spec, x, size, weights, None)
    else:
        net = _mobilenet_backbone(keras, x, size, 0.35, weights, 0.99)
    expansion_at, block_at = {}, {}
    for layer in net.layers:
        shape = layer.output.shape
        if len(shape) == 4 and shape[1] == shape[2]:
            side = int(shape[1])
            if layer.name.endswith("expand_relu"):
                expansion_at[side] = layer.output
            elif "_expand" not in layer.name:
                block_at[side] = layer.output
    *skip_strides, deepest = ENCODER_STRIDES
    return [expansion_at[size // s] for s in skip_strides] + [block_at[size // deepest]]


def encoder_layers(model) -> list:
    """The layers of a segmenter's pretrained encoder (none for the scratch U-Net): what the
    frozen-encoder warm-up freezes."""
    if any(layer.name == "bottleneck_conv1" for layer in model.layers):
        return []  # the scratch U-Net: nothing pretrained to hold still
    return [layer for layer in model.layers
            if layer.weights and not layer.name.startswith(DECODER_PREFIXES)]


def build_classifier(
    num_classes: int,
    input_size: int = 224,
    alpha: float = 0.35,
    backbone_weights: str | Path | None = None,
    dropout: float = 0.2,
    flat: bool = False,
    bn_momentum: float | None = None,
    pretrained: bool | None = None,
    backbone: str = "mobilenetv2",
):
    """A backbone from `train.backbones` (ImageNet-initialised from a local file or `imagenet`)
    with a softmax head. `alpha` is MobileNetV2's width; EfficientNet-Lite ignores it.

    Training nests the backbone as one layer named "backbone" (easy to freeze for the head
    phase); `flat=True` builds the same network with the backbone's layers inline, the form
    tensorflow-model-optimization needs. Layer names, and so weights, match between the two.

    By default a pretrained backbone keeps BatchNorm in inference mode. `bn_momentum` (e.g.
    0.99) lets BatchNorm train instead, with moving statistics that follow the weights within an
    epoch rather than Keras' 0.999, which lags by ~1000 steps. `pretrained` (default: whether
    `backbone_weights` is given) says the weights will come from a trained model.
    """
    from dermedge.train.backbones import get_backbone

    tf = tensorflow()
    keras = tf.keras
    spec = get_backbone(backbone)
    weights = _weights_source(backbone_weights, "backbone")
    pretrained = bool(weights) if pretrained is None else pretrained
    inputs = keras.Input((input_size, input_size, 3), name="image")
    scale, offset = spec.normalization
    x = keras.layers.Rescaling(scale, offset=offset, name="normalize")(inputs)
    if spec.is_lite:
        net = _lite_backbone(keras, spec, x if flat else None, input_size, weights, bn_momentum)
    else:
        net = _mobilenet_backbone(keras, x if flat else None, input_size, alpha, weights, bn_momentum)
    if flat:
        x = net.output
    else:
        net._name = "backbone"
        # With pretrained weights, BatchNorm stays in inference mode while fine-tuning unless
        # `bn_momentum` is given: at Keras' 0.999 the moving statistics lag the changing weights
        # and validation collapses (measured: balanced accuracy 0.56 -> 0.22). From scratch, BN trains.
        x = net(x, training=False) if pretrained and bn_momentum is None else net(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    name = f"mobilenetv2_{alpha}" if not spec.is_lite else spec.name.replace("-", "_")
    return keras.Model(inputs, outputs, name=f"{name}_{input_size}")


def _mobilenet_backbone(keras, input_tensor, input_size: int, alpha: float, weights, bn_momentum):
    try:
        backbone = keras.applications.MobileNetV2(
            input_shape=(input_size, input_size, 3), alpha=alpha, include_top=False, weights=weights,
            input_tensor=input_tensor,
        )
    except (ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0]
        hint = f" (weights of another --alpha than {alpha}?)" if "shape" in reason.lower() else ""
        raise DermedgeError(f"cannot load backbone weights {weights}{hint}: {reason}") from exc
    except Exception as exc:  # Keras' download raises a bare Exception when the host is unreachable
        if weights != "imagenet":
            raise
        raise DermedgeError(
            f"cannot download the ImageNet MobileNetV2 alpha {alpha} weights ({str(exc).splitlines()[0]}): "
            "put the no-top .h5 on this machine and pass its path with --backbone-weights") from exc
    if bn_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    return backbone


def _lite_backbone(keras, spec, input_tensor, input_size: int, weights, bn_momentum):
    """EfficientNet-Lite as a Keras model (its input is the normalised image), ImageNet weights from
    the legacy torch state dict when `weights` is given."""
    from dermedge.train.backbones import lite_features, load_lite_weights

    inner = input_tensor if input_tensor is not None else keras.Input((input_size, input_size, 3), name="normalized")
    source = keras.utils.get_source_inputs(inner)
    features = lite_features(keras, inner, spec, 0.99 if bn_momentum is None else bn_momentum)
    backbone = keras.Model(source, features, name=spec.name.replace("-", "_"))
    if weights:
        load_lite_weights({layer.name: layer for layer in backbone.layers}, spec, weights)
    return backbone


def load_trained_model(path: str | Path, role: str):
    """Load a `.keras` file with Keras' safe mode (no arbitrary code) and check its shape.

    `role` is "segmenter" (image -> one-channel mask of the same size) or "classifier"
    (image -> class probabilities).
    """
    tf = tensorflow()
    path = Path(path)
    if not path.is_file():
        raise DermedgeError(f"{role} model not found: {path}")
    from dermedge.train.losses import CUSTOM_OBJECTS

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


class KerasModel:
    """A Keras model behind the edge runtime's model interface (`run`, `input_size`, `output_size`),
    so `edge_runtime.Pipeline.from_models` runs the float originals through the very same
    resize -> mask -> crop code as the TFLite exports (the benchmark's baseline rows).

    `call` is how Keras is asked for one image: "predict" (`model.predict`, the documented inference
    API most projects use, with its per-call overhead) or "graph" (one compiled `tf.function`, the
    fastest float path TensorFlow offers). The benchmark reports both, so a speed-up is never quoted
    against a strawman alone.
    """

    CALLS = ("predict", "graph")

    def __init__(self, model, call: str = "graph"):
        if call not in self.CALLS:
            raise ValueError(f"call must be one of {self.CALLS}, got {call!r}")
        tf = tensorflow()
        self.model, self.call, self._tf = model, call, tf
        self.backend = f"keras ({call})"
        self.input_shape = tuple(int(d) if d else 1 for d in model.inputs[0].shape)
        self.output_shape = tuple(int(d) if d else 1 for d in model.outputs[0].shape)
        self._graph = tf.function(tf.autograph.experimental.do_not_convert(lambda x: model(x, training=False)))

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_shape[1], self.input_shape[2]

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape[1:]))

    def run(self, pixels: np.ndarray) -> np.ndarray:
        single = pixels.ndim == 3
        batch = np.asarray(pixels[None] if single else pixels, np.float32)
        if self.call == "predict":
            outputs = self.model.predict(batch, verbose=0)
        else:
            outputs = self._graph(self._tf.constant(batch)).numpy()
        return outputs[0] if single else outputs
