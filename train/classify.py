"""`dermedge train classify`: a pretrained backbone (`train.backbones`) on mask-guided lesion crops, in two phases (head, then
the whole network), with the class-imbalance strategy chosen by measurement on validation."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from dermedge.datasets import read_dataset
from dermedge.errors import DermedgeError
from dermedge.metrics import classification_metrics
from dermedge.splits import split_dataset, write_split_csv
from edge_runtime.labels import MALIGNANT_CLASSES
from edge_runtime.preprocess import COLOUR_CONSTANCY
from dermedge.train.backbones import get_backbone
from dermedge.train.data import ArrayData, classification_dataset, jitter_context, load_crop_arrays, mix_batches
from dermedge.train.run import (TailAverage, recalibrate_batchnorm, restored_epoch, resumable_fit_callbacks,
                               save_history, start_run, write_json)
from dermedge.train.tf_env import distribution_strategy, tensorflow
from dermedge.train.config import ClassifyConfig

IMBALANCE_STRATEGIES = ("class-weights", "focal", "balanced-sampling", "none")


def inverse_frequency_weights(targets: np.ndarray, num_classes: int) -> dict[int, float]:
    """sklearn's 'balanced' weights: n / (k * count), so every class carries the same total."""
    counts = np.bincount(targets, minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.where(present, len(targets) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {i: float(w) for i, w in enumerate(weights)}


def balanced_indices(targets: np.ndarray, length: int, seed: int) -> np.ndarray:
    """Indices drawn with replacement so every class is sampled equally often."""
    counts = np.bincount(targets)
    p = 1.0 / counts[targets]
    return np.random.default_rng(seed).choice(len(targets), size=length, p=p / p.sum())


def distillation_targets(targets: np.ndarray, teacher_probs: np.ndarray, weight: float,
                         temperature: float) -> np.ndarray:
    """Training targets mixing each label with the teacher's probabilities softened by `temperature`
    (p^(1/T), renormalised): (1 - weight) * one-hot + weight * teacher.

    Why: the teacher's spread over the other classes (a nevus that looks a little like a melanoma)
    is information a one-hot label does not carry. With weight <= 0.5 the label's class keeps the
    largest share, so class weights (looked up by Keras from the target's argmax) stay the label's."""
    softened = np.power(np.clip(teacher_probs.astype(np.float64), 1e-12, 1.0), 1.0 / temperature)
    softened /= softened.sum(axis=1, keepdims=True)
    onehot = np.eye(teacher_probs.shape[1])[targets]
    return ((1.0 - weight) * onehot + weight * softened).astype(np.float32)


def read_teacher(folder: Path, train: ArrayData, classes: tuple[str, ...]) -> np.ndarray:
    """The teacher run's probabilities for exactly this run's training images, in their order.

    The teacher must have trained on the same split: otherwise its soft targets would carry what it
    learnt from this run's validation or test images."""
    path = folder / "train_predictions.npz"
    if not path.is_file():
        raise DermedgeError(f"--teacher {folder}: no train_predictions.npz (a `train classify` run folder "
                            "written by this version)")
    with np.load(path, allow_pickle=False) as saved:
        ids, probs = [str(i) for i in saved["image_ids"]], saved["probabilities"]
    ours = [s.image_id for s in train.kept]
    if set(ids) != set(ours) or probs.shape[1] != len(classes):
        raise DermedgeError(f"--teacher {folder}: its training images or classes differ from this run's "
                            "(train the teacher on the same split: same --seed / --split-seed and data)")
    row = {image_id: i for i, image_id in enumerate(ids)}
    return probs[[row[i] for i in ours]]


def _loss_and_weights(tf, strategy: str, targets: np.ndarray, num_classes: int, label_smoothing: float = 0.0,
                      malignant: tuple[str, ...] | None = None, malignant_weight: float = 0.0):
    """The loss and Keras class weights of an imbalance strategy; with `malignant_weight`, the
    cross-entropy gains the malignant term (`malignant` names each column's class)."""
    if strategy == "focal":
        return tf.keras.losses.CategoricalFocalCrossentropy(gamma=2.0, label_smoothing=label_smoothing), None
    weights = inverse_frequency_weights(targets, num_classes) if strategy == "class-weights" else None
    if malignant_weight:
        return cross_entropy_with_malignant_term(tf, malignant, malignant_weight, label_smoothing), weights
    return tf.keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), weights


def cross_entropy_with_malignant_term(tf, classes: tuple[str, ...], weight: float, label_smoothing: float = 0.0):
    """Per-image categorical cross-entropy plus `weight` x the binary cross-entropy of the softmax's
    malignant share (the summed probability of mel, bcc and akiec) against the label's.

    Why: the 7-way loss charges a melanoma read as a basal-cell carcinoma as much as one read as a
    nevus, while the screening decision (the malignant score) only suffers from the second. The
    extra term pulls the malignant mass to the right side as a whole, leaving the 7-way head as is."""
    column = tf.constant([[1.0 if c in MALIGNANT_CLASSES else 0.0] for c in classes], tf.float32)

    def cross_entropy_and_malignant(y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        seven_way = tf.keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=label_smoothing)
        malignant = tf.keras.losses.binary_crossentropy(tf.matmul(y_true, column), tf.matmul(y_pred, column))
        return seven_way + weight * malignant

    return cross_entropy_and_malignant


class ValidationScores:
    """Keras callback factory: balanced accuracy and macro AUC on validation after every epoch,
    written into the logs so EarlyStopping and the history can use them."""

    @staticmethod
    def create(tf, images: np.ndarray, targets: np.ndarray, classes: tuple[str, ...]):
        class _Callback(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                probs = self.model.predict(images.astype(np.float32), batch_size=64, verbose=0)
                scores = classification_metrics(targets, probs, classes)
                logs["val_balanced_accuracy"] = scores["balanced_accuracy"]
                logs["val_macro_auc"] = scores["macro_auc"]
                print(f"  val balanced_accuracy {scores['balanced_accuracy']:.4f}  "
                      f"macro_auc {scores['macro_auc']:.4f}", flush=True)

        return _Callback()


def compare_imbalance_strategies(tf, model, train: ArrayData, val: ArrayData,
                                 classes: tuple[str, ...], seed: int) -> dict:
    """Measure each imbalance strategy cheaply: a softmax head on frozen ImageNet features.

    Fine-tuning the whole network once per strategy would cost hours on a CPU; the head phase
    ranks the strategies on the same features in seconds, and the winner is then fine-tuned.
    """
    backbone = model.get_layer("backbone")
    extractor = tf.keras.Model(model.input, model.get_layer("pool").output)
    del backbone
    train_features = extractor.predict(train.images.astype(np.float32), batch_size=64, verbose=0)
    val_features = extractor.predict(val.images.astype(np.float32), batch_size=64, verbose=0)
    k = len(classes)
    results = {}
    for strategy in IMBALANCE_STRATEGIES:
        tf.keras.utils.set_random_seed(seed)
        head = tf.keras.Sequential([
            tf.keras.layers.Input((train_features.shape[1],)),
            tf.keras.layers.Dropout(0.2),
            tf.keras.layers.Dense(k, activation="softmax"),
        ])
        loss, class_weight = _loss_and_weights(tf, strategy, train.targets, k)
        head.compile(tf.keras.optimizers.Adam(1e-3), loss)
        x, y = train_features, train.targets
        if strategy == "balanced-sampling":
            idx = balanced_indices(y, len(y), seed)
            x, y = x[idx], y[idx]
        best = {"balanced_accuracy": -1.0}
        for _ in range(6):  # 6 x 5 epochs, keeping the best checkpoint like early stopping would
            head.fit(x, tf.one_hot(y, k), batch_size=64, epochs=5, verbose=0, class_weight=class_weight)
            scores = classification_metrics(val.targets, head.predict(val_features, verbose=0), classes)
            if scores["balanced_accuracy"] > best["balanced_accuracy"]:
                best = {key: scores[key] for key in ("balanced_accuracy", "macro_auc", "accuracy")}
        results[strategy] = best
        print(f"  imbalance {strategy:18s} val balanced_accuracy {best['balanced_accuracy']:.4f}  "
              f"macro_auc {best['macro_auc']:.4f}", flush=True)
    chosen = max(results, key=lambda s: results[s]["balanced_accuracy"])
    return {"method": "softmax head on frozen ImageNet features, 30 epochs, best val epoch",
            "results": results, "chosen": chosen}


def _fit_phase(tf, model, train: ArrayData, classes: tuple[str, ...], strategy: str, config: ClassifyConfig,
               epochs: int, optimizer, callbacks, validation, seed: int,
               soft_targets: np.ndarray | None = None):
    """One `model.fit` under the run's recipe (imbalance, framing, label smoothing, mixup,
    rotation, malignant term, all read from `config`); the head and fine-tune phases differ only in
    the rest."""
    k = len(classes)
    loss, class_weight = _loss_and_weights(tf, strategy, train.targets, k, config.label_smoothing,
                                           classes, config.malignant_weight)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    steps = math.ceil(len(train.targets) / config.batch_size)
    indices = (balanced_indices(train.targets, steps * config.batch_size * epochs, seed)
               if strategy == "balanced-sampling" else None)
    ds = classification_dataset(train, k, config.batch_size, augment=True, sample_indices=indices,
                                out_size=config.input_size, jitter=config.crop_jitter,
                                soft_targets=soft_targets, free_rotation=config.free_rotation)
    if config.mixup:
        weights = None if class_weight is None else np.array([class_weight[c] for c in range(k)])
        ds = mix_batches(ds, config.mixup, weights, seed)
        class_weight = None  # now carried by the batches' sample weights
    if indices is None:
        ds = ds.repeat()
    return model.fit(ds, epochs=epochs, steps_per_epoch=steps, validation_data=validation,
                     class_weight=class_weight, callbacks=callbacks, verbose=config.verbose)


def train_classifier(config: ClassifyConfig) -> dict:
    tf = tensorflow(config.logical_cpus)
    from dermedge.train.models import build_classifier

    if config.init_from and config.imbalance == "auto":
        raise DermedgeError("--init-from continues a trained model: name its --imbalance strategy "
                            "(the comparison ranks strategies on ImageNet features only)")
    if config.imbalance not in ("auto", *IMBALANCE_STRATEGIES):
        raise DermedgeError(f"unknown --imbalance {config.imbalance!r}: use auto or one of "
                            f"{', '.join(IMBALANCE_STRATEGIES)}")
    get_backbone(config.backbone)  # an unknown name fails before a run folder is made
    if config.colour_constancy not in COLOUR_CONSTANCY:
        raise DermedgeError(f"unknown --colour-constancy {config.colour_constancy!r}: use "
                            f"{' or '.join(COLOUR_CONSTANCY)}")
    if not 0.0 <= config.crop_jitter < 1.0:
        raise DermedgeError(f"--crop-jitter must be in [0, 1), got {config.crop_jitter}")
    if not 0.0 <= config.distill_weight <= 0.5 or config.distill_temperature <= 0:
        raise DermedgeError("--distill-weight must be in [0, 0.5] (the label keeps the largest share) "
                            "and --distill-temperature > 0")
    if config.teachers and config.imbalance in ("auto", "focal"):
        raise DermedgeError("--teacher: name --imbalance class-weights, balanced-sampling or none "
                            "(the comparison and the focal loss take one-hot labels)")
    if config.malignant_weight < 0 or (config.malignant_weight and config.imbalance in ("auto", "focal")):
        raise DermedgeError("--malignant-weight: a weight >= 0, with --imbalance class-weights, "
                            "balanced-sampling or none (it extends the cross-entropy)")
    if not 0 <= config.average_last <= config.epochs:
        raise DermedgeError(f"--average-last must be between 0 and --epochs ({config.epochs}), "
                            f"got {config.average_last}")
    tf.keras.utils.set_random_seed(config.seed)
    out = start_run(Path(config.out), config)
    dataset = read_dataset(Path(config.images), Path(config.labels) if config.labels else None,
                           Path(config.masks) if config.masks else None)
    split_seed = config.seed if config.split_seed is None else config.split_seed
    if config.limit:
        dataset = dataset.subset(config.limit, split_seed)
    classes = dataset.classes
    k = len(classes)
    splits = split_dataset(dataset, config.val_fraction, config.test_fraction, split_seed)
    write_split_csv(splits, out / "split.csv")
    colour = config.colour_constancy
    arrays = {name: load_crop_arrays(s, classes, config.input_size, config.crop_margin, colour)
              for name, s in splits.items() if s and name != "train"}
    if not splits.get("train") or "val" not in arrays:
        raise DermedgeError("too few lesions to split into train and val: use more images")
    # Training crops carry extra context when jittered; validation and test keep the deployed framing.
    context_size, context_margin = jitter_context(config.input_size, config.crop_margin, config.crop_jitter)
    train = load_crop_arrays(splits["train"], classes, context_size, context_margin, colour)
    val = arrays["val"]
    without_mask = sum(s.mask_path is None for s in train.kept)
    if without_mask:
        print(f"  {without_mask} training images have no mask: their whole image is used", flush=True)

    strategy = distribution_strategy(config.strategy, config.logical_cpus)
    print(f"  distribution: {type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)", flush=True)
    with strategy.scope():
        model = build_classifier(k, config.input_size, config.alpha, config.backbone_weights,
                                 bn_momentum=config.bn_momentum, backbone=config.backbone,
                                 pretrained=bool(config.backbone_weights or config.init_from))
        if config.init_from:
            model.set_weights(_continue_from(Path(config.init_from), k, config.input_size).get_weights())

    @functools.cache
    def deployed_framing() -> ArrayData:
        """The training crops as the runtime frames them (jittered arrays carry extra context);
        decoded at most once, whether the imbalance comparison, BatchNorm re-estimation or both
        need them."""
        return train if not config.crop_jitter else load_crop_arrays(
            splits["train"], classes, config.input_size, config.crop_margin, colour)

    soft_targets = None
    report: dict = {"classes": list(classes)}
    if config.teachers:
        # An ensemble's mean probabilities: a better teacher than any one member when they disagree.
        teacher_probs = np.mean([read_teacher(Path(t), train, classes) for t in config.teachers], axis=0)
        soft_targets = distillation_targets(train.targets, teacher_probs, config.distill_weight,
                                            config.distill_temperature)
        report["distillation"] = {"teachers": list(config.teachers), "weight": config.distill_weight,
                                  "temperature": config.distill_temperature,
                                  "teacher_train_accuracy": float(np.mean(teacher_probs.argmax(1) == train.targets))}
    imbalance = config.imbalance
    if imbalance == "auto":
        comparison = compare_imbalance_strategies(tf, model, deployed_framing(), val, classes, config.seed)
        write_json(out / "imbalance_comparison.json", comparison)
        imbalance = comparison["chosen"]
        report["imbalance_comparison"] = comparison
    report["imbalance"] = imbalance

    validation = classification_dataset(val, k, config.batch_size, augment=False)
    scores = ValidationScores.create(tf, val.images, val.targets, classes)
    with strategy.scope():
        head_history = {}
        if config.head_epochs > 0:
            model.get_layer("backbone").trainable = False
            head_history = _fit_phase(tf, model, train, classes, imbalance, config, config.head_epochs,
                                      tf.keras.optimizers.Adam(config.head_learning_rate), [scores],
                                      validation, config.seed, soft_targets).history
        model.get_layer("backbone").trainable = True
        steps = math.ceil(len(train.targets) / config.batch_size)
        schedule = tf.keras.optimizers.schedules.CosineDecay(
            config.learning_rate * 0.1, decay_steps=max(config.epochs - 1, 1) * steps, alpha=0.02,
            warmup_target=config.learning_rate, warmup_steps=steps,
        )
        if config.average_last:
            keep = TailAverage.create(tf, config.epochs, config.average_last)
        else:
            keep = tf.keras.callbacks.EarlyStopping("val_balanced_accuracy", mode="max",
                                                    patience=config.patience, restore_best_weights=True)
        # An interrupted run resumes its fine-tune phase from the last finished epoch when started
        # again with the same --out. The tail average's running sum is not kept across an
        # interruption (it then averages the epochs after the restart); EarlyStopping's best is.
        resume = resumable_fit_callbacks(tf, out / "backup", [] if config.average_last else [keep])
        _fit_phase(tf, model, train, classes, imbalance, config, config.epochs,
                   tf.keras.optimizers.Adam(schedule), [scores, keep, *resume],
                   validation, config.seed + 1, soft_targets)
        tune_history = resume[-1].history  # every fine-tune epoch, those before an interruption too
        if config.average_last:
            model.set_weights(keep.averaged_weights())
            recalibrate_batchnorm(model, deployed_framing().images, config.batch_size)
            report["weights"] = f"mean of the last {config.average_last} fine-tune epochs, BatchNorm re-estimated"
            last = config.head_epochs + len(tune_history["loss"])
            kept = (last - config.average_last + 1, last)
        else:
            tuned = restored_epoch(keep)
            kept = tuple(config.head_epochs + e for e in tuned) if tuned else None
    model.compile(loss="categorical_crossentropy")  # a plain, portable compile state for saving
    model.save(out / "classifier.keras")
    history = {key: head_history.get(key, []) + tune_history.get(key, [])
               for key in tune_history}
    save_history(out, history, f"{model.name}: {model.count_params():,} parameters "
                               f"(head {config.head_epochs} epochs, then fine-tune)", kept)
    report.update(parameters=int(model.count_params()),
                  epochs_run=config.head_epochs + len(tune_history["loss"]),
                  kept_epochs=list(kept) if kept else None)
    for name in ("val", "test"):
        if name in arrays:
            report[name] = evaluate_classifier(model, arrays[name], classes, out, name)
    # The training crops' predictions too: a distillation student reads them as its soft targets
    # (`--teacher`), and train vs val shows how far the run fits its own data.
    report["train"] = evaluate_classifier(model, deployed_framing(), classes, out, "train")
    write_json(out / "summary.json", report)
    return report


def _continue_from(path: Path, num_classes: int, input_size: int):
    """A classifier saved by an earlier run, whose weights start a warm restart of the schedule.

    Only the weights are taken: the model is rebuilt from the current options (e.g. trainable
    BatchNorm), which must describe the same architecture."""
    from dermedge.train.models import load_trained_model

    model = load_trained_model(path, "classifier")
    names = {layer.name for layer in model.layers}
    if not {"backbone", "pool"} <= names or model.output_shape[-1] != num_classes \
            or model.input_shape[1] != input_size:
        raise DermedgeError(f"--init-from {path}: not a {num_classes}-class {input_size}px classifier "
                            "written by `dermedge train classify`")
    return model


def evaluate_classifier(model, data: ArrayData, classes: tuple[str, ...], out: Path, name: str) -> dict:
    """Metrics JSON, confusion matrix and ROC plots for one split; returns the headline figures."""
    from dermedge.reports import plot_confusion, plot_roc

    probs = model.predict(data.images.astype(np.float32), batch_size=64, verbose=0)
    metrics = classification_metrics(data.targets, probs, classes, MALIGNANT_CLASSES)
    metrics["unreadable"] = data.failed
    write_json(out / f"{name}_metrics.json", metrics)
    np.savez_compressed(out / f"{name}_predictions.npz", probabilities=probs.astype(np.float32),
                        labels=data.targets, image_ids=np.array([s.image_id for s in data.kept]))
    plot_confusion(metrics["confusion_matrix"], classes, out / f"{name}_confusion.png",
                   f"{name}: balanced accuracy {metrics['balanced_accuracy']:.3f}")
    plot_roc(data.targets, probs, classes, out / f"{name}_roc.png",
             f"{name}: macro AUC {metrics['macro_auc']:.3f}", MALIGNANT_CLASSES)
    keys = ("n", "accuracy", "balanced_accuracy", "balanced_accuracy_ci95", "macro_auc", "ece")
    headline = {key: metrics[key] for key in keys}
    if "melanoma" in metrics:
        headline["melanoma"] = metrics["melanoma"]
    return headline
