"""Which int8 rounding flips the classifier's decisions: each group of tensors rounded alone, in float.

Why: before 2026-12-05 the shipped int8 classifier agreed with float on 0.920 of validation crops,
under the classifier issue's 0.95, and AdaRound showed that weight rounding was not most of the
loss (docs/experiments.md, *AdaRound*). This rounds one group of tensors at a time onto TFLite's
int8 grid inside the float Keras model and scores top-1 agreement with float on the validation
ground-truth crops, so the loss is split into its sources:

- `weights`: every conv's BatchNorm-folded kernel rounded per output channel, symmetric, as the
  converter rounds it (export/bias_correction.py), no bias correction;
- activations, each asymmetric per tensor over the min/max of the representative crops, as TFLite's
  calibration sets them: `relu` (every ReLU6 output), `stream` (the linear bottlenecks: projection
  outputs and residual sums, early = blocks 0-7, late = 8 on), `pool`, `logits`, and `softmax` (the
  int8 output, steps of 1/256); `activations` is all of them and `everything` adds the weights.

`everything` is the simulation's check against the converted `int8` (benchmarks/int8_agreement.py,
form `int8`, no bias correction). It read 0.952 where the converted model read 0.9205: the
difference was the converter's int8 input normalisation, which this simulation does exactly, and
which export/tflite.py (`exact_normalization`) now makes exact too (converted: 0.951).

    python benchmarks/activation_rounding.py [--run runs/classify] [--representative 200]
        [--groups weights,relu,stream] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from dermedge.export.bias_correction import conv_bn_pairs, folding_scale, int8_step  # noqa: E402
from dermedge.export.keras_io import flatten_classifier  # noqa: E402
from dermedge.train.models import load_trained_model  # noqa: E402
from dermedge.train.tf_env import tensorflow  # noqa: E402
from int8_agreement import agreement_row  # noqa: E402  benchmarks/, beside this script
from report_json import RunCrops, emit  # noqa: E402

ACTIVATION_GROUPS = ("relu", "stream", "stream_early", "stream_late", "pool", "logits", "softmax")
GROUPS = ("weights", *ACTIVATION_GROUPS, "activations", "everything")
LATE_BLOCK = 8  # stream_late: blocks from this index on


def _stream_block(name: str) -> int | None:
    """The block index of a linear-bottleneck tensor (block<i>_project_bn, block<i>_add), else None."""
    if name.startswith("block") and name.endswith(("_project_bn", "_add")):
        return int(name.split("_")[0][len("block"):])
    return None


def tensors_of(group: str, names: list[str]) -> set[str]:
    """The activation tensors (layer names, plus "logits" and "softmax") a group rounds."""
    if group == "relu":
        return {n for n in names if n.endswith("_relu")}
    if group.startswith("stream"):
        blocks = {n: _stream_block(n) for n in names}
        keep = {"stream": lambda b: True, "stream_early": lambda b: b < LATE_BLOCK,
                "stream_late": lambda b: b >= LATE_BLOCK}[group]
        return {n for n, b in blocks.items() if b is not None and keep(b)}
    if group in ("pool", "logits", "softmax"):
        return {group}
    if group in ("activations", "everything"):
        return set().union(*(tensors_of(g, names) for g in ("relu", "stream", "pool", "logits", "softmax")))
    return set()  # weights


class RoundingModel:
    """The flat float classifier, run layer by layer so that chosen tensors are rounded to int8 on the
    way. The softmax is split from the last Dense layer, as the converter splits it."""

    def __init__(self, model):
        self.tf = tensorflow()
        self.model = model
        self.dense = model.layers[-1]
        self.names = [layer.name for layer in model.layers[1:-1]] + ["logits", "softmax"]

    def run(self, images: np.ndarray, rounded=frozenset(), ranges=None, batch_size: int = 50):
        """Probabilities; with `collect` (ranges None and rounded empty) also the min/max of every tensor."""
        outputs, seen = [], {}
        for start in range(0, len(images), batch_size):
            probs, found = self._forward(images[start:start + batch_size].astype(np.float32), rounded, ranges)
            outputs.append(probs)
            for name, (low, high) in found.items():
                old = seen.get(name, (low, high))
                seen[name] = (min(old[0], low), max(old[1], high))
        return np.concatenate(outputs), seen

    def _forward(self, x, rounded, ranges):
        tf, values, seen = self.tf, {self.model.layers[0].name: x}, {}

        def visit(name, tensor):
            seen[name] = (float(tf.reduce_min(tensor)), float(tf.reduce_max(tensor)))
            return _fake_int8(tensor, *ranges[name]) if name in rounded else tensor

        for layer in self.model.layers[1:-1]:
            inbound = layer._inbound_nodes[0].inbound_layers
            inputs = [values[i.name] for i in inbound] if isinstance(inbound, list) else values[inbound.name]
            values[layer.name] = visit(layer.name, layer(inputs, training=False))
        kernel, bias = self.dense.get_weights()
        logits = visit("logits", tf.matmul(values[self.model.layers[-2].name], kernel) + bias)
        probs = tf.nn.softmax(logits)
        seen["softmax"] = (0.0, 1.0)
        if "softmax" in rounded:  # TFLite's int8 softmax output: scale 1/256, zero point -128
            probs = tf.round(probs * 256.0) / 256.0
        return probs.numpy(), seen


def _fake_int8(tensor, low: float, high: float):
    """Asymmetric per-tensor int8 rounding over [low, high] (widened to hold 0), as TFLite's calibration."""
    tf = tensorflow()
    low, high = min(low, 0.0), max(high, 0.0)
    step = (high - low) / 255.0 or 1.0
    zero = np.round(-low / step)
    return (tf.clip_by_value(tf.round(tensor / step) + zero, 0.0, 255.0) - zero) * step


def round_weights(model) -> int:
    """Round every conv's folded kernel per output channel as the converter does (in place); returns
    how many convs."""
    pairs = conv_bn_pairs(model)
    for conv, bn in pairs:
        weights = conv.get_weights()
        scale = folding_scale(conv, bn)
        depthwise = type(conv).__name__ == "DepthwiseConv2D"
        folded = weights[0] * (scale[:, None] if depthwise else scale)
        step = int8_step(folded, channel_axis=2 if depthwise else -1)
        unfolded = np.round(folded / step) * step / (scale[:, None] if depthwise else scale)
        conv.set_weights([unfolded.astype(weights[0].dtype), *weights[1:]])
    return len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/classify"))
    parser.add_argument("--representative", type=int, default=200, help="training crops that set the ranges")
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}: use {', '.join(GROUPS)}")

    run = RunCrops(args.run)
    classes = run.classes
    representative = run.training(0, args.representative).images  # int8_agreement.py's choice
    val = run.crops(run.splits["val"])
    model = flatten_classifier(load_trained_model(args.run / "classifier.keras", "classifier"))

    plain = RoundingModel(model)
    reference, _ = plain.run(val.images)
    _, ranges = plain.run(representative)
    tf = tensorflow()
    rounded_model = tf.keras.models.clone_model(model)
    rounded_model.set_weights(model.get_weights())
    convs = round_weights(rounded_model)
    with_weights = RoundingModel(rounded_model)

    rows = {}
    for group in groups:
        runner = with_weights if group in ("weights", "everything") else plain
        tensors = tensors_of(group, plain.names)
        probs, _ = runner.run(val.images, tensors, ranges)
        rows[group] = {**agreement_row(probs, reference, val.targets, classes),
                       "tensors": len(tensors), "convs_rounded": convs if runner is with_weights else 0}
        print(group, rows[group], flush=True)
    emit({"run": str(args.run), "split": "val", "n": int(len(val.targets)),
          "representative": int(len(representative)), "groups": rows}, args.json)


if __name__ == "__main__":
    main()
