"""The run directory: everything needed to trust, reproduce or reuse a training run."""

from __future__ import annotations

import dataclasses
import json
import platform
import shlex
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dermedge import __version__


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def start_run(out: Path, config) -> Path:
    """Create the run folder and record the config and the exact command line."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = dataclasses.asdict(config)
    record["command"] = shlex.join(["dermedge", *sys.argv[1:]]) if sys.argv[0].endswith("dermedge") else shlex.join(sys.argv)
    record["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record["dermedge_version"] = __version__
    record["python"] = platform.python_version()
    write_json(out / "config.json", record)
    return out


def save_history(out: Path, history: dict, title: str, kept: tuple[int, int] | None = None) -> None:
    """history.json and training_curves.png; `kept` (first, last epoch, 1-based) marks the
    epochs the saved model comes from."""
    from dermedge.reports import plot_history

    clean = {k: [float(v) for v in values] for k, values in history.items()}
    write_json(out / "history.json", clean)
    plot_history(clean, out / "training_curves.png", title, kept)


def restored_epoch(stop) -> tuple[int, int] | None:
    """(epoch, epoch), 1-based, that a Keras EarlyStopping with restore_best_weights put back."""
    if not stop.restore_best_weights or stop.best_weights is None:
        return None
    return stop.best_epoch + 1, stop.best_epoch + 1


def resumable_fit_callbacks(tf, backup: Path, stateful: list) -> list:
    """Callbacks that let an interrupted fit resume, from `backup`, as if it had not stopped.

    Keras' BackupAndRestore keeps the weights, the optimizer and the epoch. This keeps the rest: the
    history so far, and the counters of `stateful` callbacks (EarlyStopping's best epoch, its weights
    and its patience; ReduceLROnPlateau's wait), which Keras resets at every fit. Without them a
    resumed run would keep its last epoch, not its best. Put these after `stateful` in the list.
    When the fit completes, `backup` goes (with anything else the caller kept in it).
    """
    attributes = ("best", "best_epoch", "wait", "cooldown_counter")
    keeps_best = [c for c in stateful if getattr(c, "restore_best_weights", False)]
    state, best = backup / "progress.json", backup / "best.weights.h5"

    class Progress(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.history: dict = {}
            if not state.is_file():
                return
            saved = json.loads(state.read_text())
            self.history = saved["history"]
            print(f"  resuming after epoch {len(self.history.get('loss', []))} from {backup}", flush=True)
            for callback, values in zip(stateful, saved["callbacks"]):
                for name, value in values.items():
                    setattr(callback, name, value)
            if keeps_best and best.is_file():
                current = self.model.get_weights()  # BackupAndRestore's, the last finished epoch
                self.model.load_weights(str(best))
                for callback in keeps_best:
                    callback.best_weights = self.model.get_weights()
                self.model.set_weights(current)

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                self.history.setdefault(key, []).append(float(value))
            if any(callback.best_epoch == epoch for callback in keeps_best):
                self.model.save_weights(str(best))
            values = [{name: float(getattr(c, name)) if name == "best" else int(getattr(c, name))
                       for name in attributes if hasattr(c, name)} for c in stateful]
            partial = backup / "progress.json.partial"
            write_json(partial, {"history": self.history, "callbacks": values})
            partial.replace(state)  # whole or not at all

        def on_train_end(self, logs=None):  # not called when the fit is interrupted
            shutil.rmtree(backup, ignore_errors=True)

    backup.mkdir(parents=True, exist_ok=True)
    return [tf.keras.callbacks.BackupAndRestore(str(backup)), Progress()]


class TailAverage:
    """Keras callback factory: the mean of the weights at the end of each of the last `n`
    epochs (checkpoint averaging on the classifier's cosine tail, or at the segmenter's constant
    learning rate as stochastic weight averaging does).

    Why: the validation figures swing from one epoch to the next (the classifier's balanced accuracy
    by about 3 points, the segmenter's Dice by a few tenths), so the best single epoch is partly
    chosen by noise; the mean of several late epochs sits in a flatter region and needs no choosing.
    Used by both trainers (`--average-last`)."""

    @staticmethod
    def create(tf, total_epochs: int, n: int):
        class _Callback(tf.keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.total, self.count = None, 0

            def on_epoch_end(self, epoch, logs=None):
                if epoch < total_epochs - n:
                    return
                weights = [w.astype(np.float64) for w in self.model.get_weights()]
                self.total = weights if self.total is None else [t + w for t, w in zip(self.total, weights)]
                self.count += 1

            def averaged_weights(self) -> list[np.ndarray]:
                return [(t / self.count).astype(w.dtype) for t, w in zip(self.total, self.model.get_weights())]

        return _Callback()


def recalibrate_batchnorm(model, images: np.ndarray, batch_size: int, passes: int = 2) -> None:
    """Re-estimate BatchNorm's moving statistics for averaged weights (as SWA's `update_bn` does):
    the mean of each epoch's statistics is not the statistics of the mean weights. Every forward
    pass in training mode moves the statistics by the layer's momentum; two passes over the
    un-augmented training crops leave under 2% of the starting value at momentum 0.99."""
    order = np.random.default_rng(0).permutation(len(images))
    for _ in range(passes):
        for start in range(0, len(order), batch_size):
            model(images[order[start:start + batch_size]].astype(np.float32), training=True)
