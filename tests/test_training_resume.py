"""An interrupted fit resumes as if it had not stopped: the whole history, and EarlyStopping keeps the
best epoch's weights, not the last epoch's (Keras' BackupAndRestore alone keeps neither)."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")


class Interrupt(Exception):
    pass


def _model(keras):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def test_a_resumed_fit_keeps_history_and_the_best_epoch(tmp_path):
    from dermedge.train.run import resumable_fit_callbacks
    from dermedge.train.tf_env import tensorflow

    tf = tensorflow()
    keras = tf.keras
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")
    # A validation loss that gets worse after epoch 2 (0-based 1): noise the model cannot fit.
    scores = iter([5.0, 1.0, 2.0, 3.0, 4.0, 6.0])

    class FakeValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(scores)

    seen = {}

    class StopAfter(keras.callbacks.Callback):  # Ctrl-C, a power cut: after epoch 3 is backed up
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = self.model.get_weights()
            if epoch == 2:
                raise Interrupt

    def callbacks(extra):
        stop = keras.callbacks.EarlyStopping("score", mode="min", patience=10, restore_best_weights=True)
        return stop, [FakeValidation(), stop, *resumable_fit_callbacks(tf, tmp_path / "backup", [stop]), *extra]

    keras.utils.set_random_seed(0)
    model = _model(keras)
    stop, first = callbacks([StopAfter()])
    with pytest.raises(Interrupt):
        model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=first)
    assert (tmp_path / "backup" / "progress.json").is_file()

    model = _model(keras)  # a new process: fresh weights, fresh callbacks
    stop, second = callbacks([])
    model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=second)
    history = second[-1].history
    assert history["score"] == [5.0, 1.0, 2.0, 3.0, 4.0]  # the epochs before the interruption too
    assert len(history["loss"]) == 5
    assert stop.best_epoch == 1 and stop.best == 1.0
    # The model ends on epoch 2's weights, which only the first process ever held.
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), seen[1]))
    assert not any(np.array_equal(a, b) for a, b in zip(model.get_weights(), seen[2]))
