"""`dermedge train segment`: fit the lesion segmenter and report Dice/IoU at image resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dermedge.datasets import read_dataset, read_mask
from dermedge.errors import DermedgeError
from dermedge.metrics import segmentation_metrics
from dermedge.splits import split_dataset, write_split_csv
from dermedge.train.data import (ArrayData, concatenate_arrays, load_lesion_free_arrays,
                                 load_segmentation_arrays, segmentation_dataset)
from dermedge.train.run import (TailAverage, recalibrate_batchnorm, restored_epoch, resumable_fit_callbacks,
                               save_history, start_run, write_json)
from dermedge.train.tf_env import distribution_strategy, tensorflow
from edge_runtime.postprocess import clean_mask
from dermedge.train.config import SegmentConfig


def predict_masks(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Lesion probabilities (N, H, W) at the model's resolution."""
    return model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)[..., 0]


def evaluate_at_image_size(model, data: ArrayData, threshold: float = 0.5) -> dict:
    """Dice/IoU against each image's original mask, of the mask the device makes from the map
    (`edge_runtime.postprocess.clean_mask`: resized, thresholded, largest component, holes filled)."""
    probabilities = predict_masks(model, data.images)

    def pairs():
        for sample, prob in zip(data.kept, probabilities):
            truth = read_mask(sample.mask_path)
            yield clean_mask(prob, truth.shape, threshold), truth

    return segmentation_metrics(pairs())


def train_segmenter(config: SegmentConfig) -> dict:
    tf = tensorflow(config.logical_cpus)
    from dermedge.train.losses import bce_dice_loss, dice_metric, iou_metric
    from dermedge.train.models import build_segmenter, encoder_layers

    if not 0 <= config.average_last <= config.epochs:
        raise DermedgeError(f"--average-last must be between 0 and --epochs ({config.epochs}), "
                            f"got {config.average_last}")
    tf.keras.utils.set_random_seed(config.seed)
    out = start_run(Path(config.out), config)
    dataset = read_dataset(Path(config.images), Path(config.labels) if config.labels else None,
                           Path(config.masks) if config.masks else None).with_masks_only()
    if config.limit:
        dataset = dataset.subset(config.limit, config.seed)
    splits = split_dataset(dataset, config.val_fraction, config.test_fraction, config.seed)
    write_split_csv(splits, out / "split.csv")
    arrays = {name: load_segmentation_arrays(s, config.input_size) for name, s in splits.items() if s}
    if "train" not in arrays or "val" not in arrays:
        raise DermedgeError("too few lesions to split into train and val: use more images")

    training = arrays["train"]
    if config.negatives:
        wanted = round(config.negatives * len(training.images))
        skin = load_lesion_free_arrays(splits["train"], config.input_size, wanted, config.seed)
        print(f"  lesion-free training images: {len(skin.images)} of {wanted} wanted", flush=True)
        training = concatenate_arrays(training, skin)

    strategy = distribution_strategy(config.strategy, config.logical_cpus)
    print(f"  distribution: {type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)", flush=True)
    with strategy.scope():
        model = build_segmenter(config.input_size, config.base_filters, config.depth, config.max_filters,
                                config.decoder, config.encoder, None if config.init_from else config.encoder_weights,
                                config.skip_projection)
        if config.init_from:
            fresh = _continue_from(Path(config.init_from), model)
            if fresh:
                print(f"  --init-from: {len(fresh)} decoder layers start fresh ({', '.join(fresh)}); "
                      "every other layer continues", flush=True)
    train_data = segmentation_dataset(training, config.batch_size, augment=True, seed=config.seed,
                                      augmentation=config.augment)
    validation = segmentation_dataset(arrays["val"], config.batch_size, augment=False)

    def fit(epochs: int, callbacks: list):
        with strategy.scope():
            model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate),
                          loss=bce_dice_loss, metrics=[dice_metric, iou_metric])
        return model.fit(train_data, validation_data=validation, epochs=epochs, callbacks=callbacks,
                         verbose=config.verbose).history

    # A pretrained encoder first stays frozen while the randomly initialised decoder learns, so that
    # the decoder's first, large gradients do not wash out the ImageNet features.
    # An interrupted run resumes its fine-tune phase from the last finished epoch when started again
    # with the same --out; the warm-up is then already inside the backed-up weights.
    backup = out / "backup"
    warm_up = config.warmup_epochs and not backup.exists()
    frozen = encoder_layers(model) if warm_up else []
    warmup_file, warmup_weights = backup / "warmup_history.json", backup / "warmup.weights.h5"
    warmup: dict = json.loads(warmup_file.read_text()) if warmup_file.is_file() else {}
    if warmup_weights.is_file():  # a later epoch's backup, if any, replaces these
        model.load_weights(str(warmup_weights))
    if frozen:
        for layer in frozen:
            layer.trainable = False
        warmup = fit(config.warmup_epochs, [])
        for layer in frozen:
            layer.trainable = True
        backup.mkdir(parents=True, exist_ok=True)
        model.save_weights(str(warmup_weights))
        write_json(warmup_file, warmup)
    if config.average_last:
        # At a constant rate, as stochastic weight averaging runs: no early stop, no rate cut. The
        # running sum is not kept across an interruption (it then averages the epochs after it).
        average = TailAverage.create(tf, config.epochs, config.average_last)
        callbacks = [average, *resumable_fit_callbacks(tf, backup, [])]
    else:
        stop = tf.keras.callbacks.EarlyStopping("val_dice", mode="max", patience=config.patience,
                                                restore_best_weights=True)
        plateau = tf.keras.callbacks.ReduceLROnPlateau("val_dice", mode="max", factor=0.5,
                                                       patience=max(config.patience // 3, 1), min_lr=1e-5)
        callbacks = [plateau, stop, *resumable_fit_callbacks(tf, backup, [plateau, stop])]
    fit(config.epochs, callbacks)
    tuned = callbacks[-1].history  # every fine-tune epoch, those before an interruption too
    history = {key: warmup.get(key, []) + tuned.get(key, []) for key in tuned}
    if config.average_last:
        model.set_weights(average.averaged_weights())
        recalibrate_batchnorm(model, training.images, config.batch_size)
        last = len(history["loss"])
        kept = (last - config.average_last + 1, last)
    else:
        kept = restored_epoch(stop)
        kept = tuple(len(warmup.get("loss", [])) + e for e in kept) if kept else None
    model.compile(loss=bce_dice_loss)  # a plain, portable compile state for saving
    model.save(out / "segmenter.keras")
    phases = f" ({config.warmup_epochs} epochs encoder frozen, then fine-tune)" if warmup else ""
    save_history(out, history, f"{model.name}: {model.count_params():,} parameters{phases}", kept)

    from dermedge.reports import plot_dice_histogram

    report = {"parameters": int(model.count_params()), "encoder": config.encoder,
              "epochs_run": len(history["loss"]),
              "kept_epochs": list(kept) if kept else None}
    if config.average_last:
        report["weights"] = f"mean of the last {config.average_last} epochs, BatchNorm re-estimated"
    for name in ("val", "test"):
        if name in arrays:
            metrics = evaluate_at_image_size(model, arrays[name])
            metrics["unreadable"] = arrays[name].failed
            write_json(out / f"{name}_metrics.json", metrics)
            plot_dice_histogram(metrics["dice_per_image"], out / f"{name}_dice_histogram.png",
                                f"{name}: per-image Dice (n={metrics['n']})")
            report[name] = {k: metrics[k] for k in ("n", "dice", "iou", "thresholded_jaccard",
                                                    "dice_worst_decile", "dice_p10")}
    write_json(out / "summary.json", report)
    return report


def _continue_from(path: Path, built) -> list[str]:
    """Start `built` from a segmenter saved by an earlier run (e.g. a fine-tune with lesion-free
    images added); returns the names of the layers that start fresh.

    Only weights are taken, layer by layer by name. The encoder must match the saved one exactly;
    decoder layers the options change (e.g. --skip-projection) start from their initialisation,
    which is what a frozen-encoder warm-up (--warmup-epochs) is for."""
    from dermedge.train.models import DECODER_PREFIXES, load_trained_model

    model = load_trained_model(path, "segmenter")
    saved = {layer.name: layer for layer in model.layers if layer.weights}
    fresh = []
    for layer in built.layers:
        if not layer.weights:
            continue
        source = saved.get(layer.name)
        if source is not None and [w.shape for w in source.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(source.get_weights())
        elif layer.name.startswith(DECODER_PREFIXES) and model.input_shape == built.input_shape:
            fresh.append(layer.name)
        else:
            raise DermedgeError(f"--init-from {path}: not the architecture these options build "
                                f"(--encoder, --input-size, --base-filters, --depth, --max-filters)")
    return fresh
