"""`dermedge export`: trained segmenter + classifier -> every variant -> a checked bundle."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console

from dermedge import __version__
from dermedge.datasets import Sample, read_mask
from dermedge.errors import DermedgeError
from dermedge.splits import read_split_csv
from edge_runtime.bundle import (SCHEMA_VERSION, empty_bundle_folder, file_record,
                                 write_manifest)
from edge_runtime.interpreter import TFLiteModel
from edge_runtime.labels import HAM10000_CLASSES, HAM10000_NAMES, MALIGNANT_CLASSES
from edge_runtime.preprocess import DEFAULT_CROP_MARGIN
from dermedge.export import coreml, optimize, tflite
from dermedge.export.formats import Variant, pick_default_variant, select_variants
from dermedge.export.keras_io import flatten_classifier
from dermedge.export.tflite_metadata import tflite_file_record
from dermedge.train.backbones import identify_backbone
from dermedge.train.models import load_trained_model
from dermedge.export.validate import classifier_figures, segmenter_figures
from dermedge.train.tf_env import tensorflow
from dermedge.export.config import ExportConfig

ROLES = ("segmenter", "classifier")
MIN_VALIDATION_IMAGES = 100
DATASET = {
    "name": "HAM10000",
    "citation": "Tschandl, Rosendahl, Kittler. The HAM10000 dataset. Scientific Data 5, 180161 (2018)",
    "licence": "CC BY-NC-SA 4.0",
}
console = Console(width=None if Console().is_terminal else 160)  # logs keep the table readable


@dataclass
class ExportResult:
    """What `export_bundle` wrote, and what the steps after it need: the command chains
    calibration (on `validation`, the val rows of `split`), the zip and the table."""

    out: Path
    manifest: dict
    failures: list[str]  # variants under the agreement floor: the command fails after the rest is done
    split: Path
    validation: list[Sample]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _subset(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    if not n or n >= len(samples):
        return samples
    order = np.random.default_rng(seed).permutation(len(samples))[:n]
    return [samples[i] for i in sorted(order)]


def _remap(samples: list[Sample], data_root: Path | None) -> list[Sample]:
    """Point a split's recorded paths at another copy of the data: <root>/images, <root>/masks."""
    if data_root is None:
        return samples
    return [Sample(s.image_id, data_root / "images" / s.image_path.name, s.label,
                   data_root / "masks" / s.mask_path.name if s.mask_path else None, s.lesion_id)
            for s in samples]


class _Data:
    """The images export needs, decoded once: held-out test arrays, representative and
    fine-tuning sets from the training split."""

    def __init__(self, config: ExportConfig, labels, seg_size: int, cls_size: int, margin: float,
                 colour_constancy: str = "none"):
        from dermedge.train.data import load_crop_arrays, load_segmentation_arrays

        split_path = Path(config.split) if config.split else Path(config.classifier).parent / "split.csv"
        if not split_path.is_file():
            raise DermedgeError(f"no split CSV at {split_path}: pass --split (the split.csv of the "
                                "classifier's training run) so export validates on held-out images")
        splits = read_split_csv(split_path)
        root = Path(config.data_root) if config.data_root else None
        self.split_path = split_path
        self.val = _remap(splits.get("val", []), root)  # for calibration, fitted after export
        test = _remap(_subset(splits["test"], config.validation_images, config.seed), root)
        train = _remap(splits["train"], root)
        missing = [s.image_path for s in test[:1] + train[:1] if not s.image_path.is_file()]
        if missing:
            raise DermedgeError(f"image {missing[0]} of {split_path.name} not found: run from the folder "
                                "the model was trained from, or pass --data-root DIR (with images/, masks/)")
        if len(test) < min(MIN_VALIDATION_IMAGES, len(splits["test"])):
            raise DermedgeError(f"validation needs at least {MIN_VALIDATION_IMAGES} held-out images")
        self.labels, self.margin, self.colour = labels, margin, colour_constancy
        self.seg_test = load_segmentation_arrays(test, seg_size)
        self.seg_truths = [read_mask(s.mask_path) for s in self.seg_test.kept]
        self.cls_test = load_crop_arrays(test, labels, cls_size, margin, colour_constancy)
        # No representative set (--representative 0) is allowed until an int8 variant needs one.
        rep = _subset(train, config.representative, config.seed) if config.representative > 0 else []
        self.seg_rep = load_segmentation_arrays(rep, seg_size).images if rep else None
        self.cls_rep = load_crop_arrays(rep, labels, cls_size, margin, colour_constancy).images if rep else None
        self._train, self._sizes, self._tune_n, self._seed = train, (seg_size, cls_size), config.fine_tune_images, config.seed
        self._tune = {}

    def fine_tune_arrays(self, role: str):
        from dermedge.train.data import load_crop_arrays, load_segmentation_arrays

        if role not in self._tune:
            samples = _subset(self._train, self._tune_n, self._seed)
            self._tune[role] = (load_segmentation_arrays(samples, self._sizes[0]) if role == "segmenter"
                                else load_crop_arrays(samples, self.labels, self._sizes[1], self.margin,
                                                      self.colour))
        return self._tune[role]


def _fine_tune(model, role: str, data, epochs: int, batch_size: int, learning_rate: float,
               callbacks: list, num_classes: int, teacher=None):
    """A short fine-tune of a transformed model on the training split, as in training.

    With a `teacher` (the float classifier) the model learns the teacher's probabilities on the
    same augmented crops instead of the labels: the goal after pruning or fake-quantization is to
    keep the float model's decisions, and labels (with class weights) pull it elsewhere.
    """
    tf = tensorflow()
    from dermedge.train.data import classification_dataset, segmentation_dataset

    if role == "segmenter":
        from dermedge.train.losses import bce_dice_loss

        ds, loss, class_weight = segmentation_dataset(data, batch_size, augment=True), bce_dice_loss, None
    elif teacher is not None:
        ds, class_weight = classification_dataset(data, num_classes, batch_size, augment=True), None
        model, loss = _distillation(model, teacher), None
    else:
        from dermedge.train.classify import inverse_frequency_weights

        ds = classification_dataset(data, num_classes, batch_size, augment=True)
        loss = tf.keras.losses.CategoricalCrossentropy()
        class_weight = inverse_frequency_weights(data.targets, num_classes)
    model.compile(tf.keras.optimizers.Adam(learning_rate), loss)
    model.fit(ds, epochs=epochs, callbacks=callbacks, class_weight=class_weight, verbose=2)


def _fine_tune_target(config: ExportConfig) -> str:
    return "float model probabilities (distillation)" if config.distill else "labels (class-weighted)"


def _distillation(student, teacher):
    """A Keras model whose fit() trains `student` to match `teacher`'s probabilities (KL
    divergence) on each batch; the labels in the batch are ignored."""
    tf = tensorflow()

    class Distillation(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.student, self.teacher = student, teacher
            self.divergence = tf.keras.losses.KLDivergence()

        def train_step(self, batch):
            images, _ = batch
            target = self.teacher(images, training=False)
            with tf.GradientTape() as tape:
                loss = self.divergence(target, self.student(images, training=True))
            weights = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            return {"kl_to_float": loss}

        def call(self, images):
            return self.student(images)

    return Distillation()


def _freeze_batchnorm(model):
    """BN in inference mode for fine-tuning, as in classifier training (see train/models.py)."""
    tf = tensorflow()
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.trainable = False
    return model


class _Transforms:
    """Pruned and QAT Keras models, made once per role on first use."""

    def __init__(self, config: ExportConfig, data: _Data, num_classes: int):
        self.config, self.data, self.k = config, data, num_classes
        self.cache, self.sparsity = {}, {}

    def model(self, transform: str, role: str, original):
        """The Keras model a variant's `transform` (export/formats.py) makes of `original`, fine-tuned."""
        steps = {"prune": self._pruned, "qat": self._quantization_aware}
        if transform not in steps:
            raise ValueError(f"unknown transform {transform!r}; known: {', '.join(steps)}")
        key = (transform, role)
        if key not in self.cache:
            console.print(f"[bold]{transform}[/] {role}: fine-tuning on the training split")
            base = flatten_classifier(original) if role == "classifier" else original
            if role == "classifier":
                base = _freeze_batchnorm(base)
            teacher = original if role == "classifier" and self.config.distill else None
            self.cache[key] = steps[transform](base, role, self.data.fine_tune_arrays(role), teacher)
        return self.cache[key]

    def _pruned(self, base, role: str, data, teacher):
        epochs = self.config.fine_tune_epochs
        steps = epochs * math.ceil(len(data.images) / self.config.batch_size)
        pruned = optimize.prune(base, self.config.sparsity, steps)
        lr = 2e-4 if role == "segmenter" else 5e-5
        _fine_tune(pruned, role, data, epochs, self.config.batch_size, lr,
                   optimize.pruning_callbacks(), self.k, teacher)
        model = optimize.strip_pruning(pruned)
        self.sparsity[role] = optimize.sparsity_report(model)
        return model

    def _quantization_aware(self, base, role: str, data, teacher):
        # Activation ranges start from the representative images, not tfmot's -6..6.
        calibration = self.data.seg_rep if role == "segmenter" else self.data.cls_rep
        model = optimize.quantization_aware(base, calibration=calibration)
        lr = 1e-4 if role == "segmenter" else 2e-5
        _fine_tune(model, role, data, self.config.qat_epochs, self.config.batch_size, lr, [], self.k, teacher)
        return model


def _tflite_metadata(role: str, labels, size: int) -> dict:
    entry = {"producer": f"dermedge {__version__}", "role": role,
             "input": {"size": [size, size], "color": "RGB", "range": [0, 255],
                       "normalization": "inside the model"}}
    if role == "classifier":
        entry["labels"] = list(labels)
        entry["malignant_labels"] = sorted(MALIGNANT_CLASSES & set(labels))
    else:
        entry["output"] = "lesion probability per pixel, threshold 0.5"
    return entry


def _normalization_text(model) -> str:
    """What the model's own first layer (Rescaling "normalize") does to the 0..255 input."""
    layer = model.get_layer("normalize").get_config()
    scale, offset = float(layer["scale"]), float(layer.get("offset", 0.0))
    if not offset:
        return f"x / {1 / scale:g}, inside the model"
    return f"(x - {-offset / scale:g}) / {1 / scale:g}, inside the model"


def export_bundle(config: ExportConfig) -> ExportResult:
    tf = tensorflow()
    tf.keras.utils.set_random_seed(config.seed)
    variants = select_variants(config.variants)
    models = {"segmenter": load_trained_model(config.segmenter, "segmenter"),
              "classifier": load_trained_model(config.classifier, "classifier")}
    cls_run, seg_run = Path(config.classifier).parent, Path(config.segmenter).parent
    cls_config, seg_config = _read_json(cls_run / "config.json"), _read_json(seg_run / "config.json")
    num_classes = models["classifier"].output_shape[-1]
    labels = tuple(_read_json(cls_run / "summary.json").get("classes", HAM10000_CLASSES))
    if len(labels) != num_classes:
        raise DermedgeError(f"the classifier has {num_classes} outputs but its run lists {len(labels)} labels")
    backbone = identify_backbone(models["classifier"])
    margin = float(cls_config.get("crop_margin", DEFAULT_CROP_MARGIN))
    sizes = {role: int(m.input_shape[1]) for role, m in models.items()}

    colour = cls_config.get("colour_constancy", "none")  # runs from before the option: none
    data = _Data(config, labels, sizes["segmenter"], sizes["classifier"], margin, colour)
    console.print(f"validating on {len(data.cls_test.kept)} held-out images; "
                  f"representative set {0 if data.cls_rep is None else len(data.cls_rep)} training images")
    reference = {
        "segmenter": models["segmenter"].predict(data.seg_test.images.astype(np.float32), verbose=0)[..., 0],
        "classifier": models["classifier"].predict(data.cls_test.images.astype(np.float32), verbose=0),
    }
    keras_metrics = {
        "segmenter": segmenter_figures(reference["segmenter"], reference["segmenter"], data.seg_truths),
        "classifier": classifier_figures(reference["classifier"], reference["classifier"],
                                         data.cls_test.targets, labels),
    }

    out = empty_bundle_folder(Path(config.out))
    transforms = _Transforms(config, data, num_classes)
    manifest_variants, failures = {}, []
    for variant in variants:
        console.print(f"exporting [bold]{variant.name}[/]: {variant.description}")
        files, metrics = {}, {}
        for role in ROLES:
            model = models[role]
            if variant.transform:
                model = transforms.model(variant.transform, role, models[role])
            path = out / f"{role}_{variant.name}{variant.suffix}"
            metrics[role] = _export_one(variant, role, model, path, labels, sizes[role], data, reference[role],
                                        config.float_layers, config.bias_correction)
            files[role] = tflite_file_record(out, path) if variant.format == "tflite" else file_record(out, path)
            failures += _below_floor(variant.name, role, metrics[role], config.agreement_floor)
        entry = {"format": variant.format, "quantization": variant.quantization,
                 "transform": variant.transform, "description": variant.description,
                 "files": files, "metrics": metrics}
        if variant.transform == "prune":
            entry["sparsity"] = {role: transforms.sparsity[role] for role in ROLES}
            entry["pruning"] = {"target_sparsity": config.sparsity, "fine_tune_epochs": config.fine_tune_epochs,
                                "classifier_target": _fine_tune_target(config)}
        if variant.transform == "qat":
            entry["qat"] = {"fine_tune_epochs": config.qat_epochs, "classifier_target": _fine_tune_target(config)}
        manifest_variants[variant.name] = entry

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": "dermedge-ham10000",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dermedge_version": __version__,
        "labels": list(labels),
        "label_names": {k: HAM10000_NAMES.get(k, k) for k in labels},
        "malignant_labels": sorted(MALIGNANT_CLASSES & set(labels)),
        "segmenter": {"input_size": [sizes["segmenter"]] * 2, "input": "RGB uint8 0..255, resized",
                      "normalization": _normalization_text(models["segmenter"]), "output": "lesion probability",
                      "encoder": seg_config.get("encoder", "none")},
        "classifier": {"input_size": [sizes["classifier"]] * 2, "input": "RGB uint8 0..255 lesion crop",
                       "normalization": _normalization_text(models["classifier"]),
                       "backbone": backbone, "colour_constancy": colour, "output": "softmax over labels"},
        "crop_margin": margin,
        "thresholds": {"mask": 0.5, "malignant": 0.5},
        "default_variant": pick_default_variant(manifest_variants),
        "variants": manifest_variants,
        "keras_reference": keras_metrics,
        "validation": {"split": "test", "images": len(data.cls_test.kept),
                       "representative_images": 0 if data.cls_rep is None else int(len(data.cls_rep)),
                       "agreement_floor": config.agreement_floor,
                       "unreadable": data.cls_test.failed},
        "training": {"segmenter": _training_record(seg_run, seg_config),
                     "classifier": _training_record(cls_run, cls_config)},
        "dataset": DATASET,
    }
    write_manifest(out, manifest)
    return ExportResult(out, manifest, failures, data.split_path, data.val)


def _export_one(variant: Variant, role: str, model, path: Path, labels, size: int, data: _Data, reference,
                float_layers: int = tflite.FLOAT_LAYERS, bias_correction: bool = True):
    if variant.format == "tflite":
        representative = data.seg_rep if role == "segmenter" else data.cls_rep
        corrected = None
        if bias_correction and variant.bias_corrected and representative is not None:
            from dermedge.export.bias_correction import bias_corrected

            model, corrected = bias_corrected(model, representative)
        content, conversion = tflite.convert(
            model, variant.quantization,
            tflite.representative_from(representative) if representative is not None else None, float_layers)
        content = tflite.add_metadata(content, _tflite_metadata(role, labels, size))
        path.write_bytes(content)
        runner = TFLiteModel(content=content)
        if role == "segmenter":
            probs = runner.run(data.seg_test.images)[..., 0]
            figures = segmenter_figures(reference, probs, data.seg_truths)
        else:
            probs = runner.run(data.cls_test.images)
            figures = classifier_figures(reference, probs, data.cls_test.targets, labels)
        if corrected is not None:
            conversion = {**conversion, "bias_correction": {"layers": corrected, "images": int(len(representative))}}
        return {**figures, **({"conversion": conversion} if conversion else {})}
    mlmodel = coreml.convert(model, role, labels, variant.quantization)
    mlmodel.save(str(path))
    return coreml.check_spec(path, role, labels, (size, size))


def _below_floor(variant: str, role: str, metrics: dict, floor: float) -> list[str]:
    key = "top1_agreement" if role == "classifier" else "mask_dice_vs_float"
    if key in metrics and metrics[key] < floor:
        return [f"{variant} {role} {key} {metrics[key]:.3f} < {floor}"]
    return []


def _training_record(run: Path, config: dict) -> dict:
    summary = _read_json(run / "summary.json")
    return {"run": run.as_posix(), "command": config.get("command"),
            "test": summary.get("test"), "parameters": summary.get("parameters")}
