"""The one place TensorFlow is imported, lazily, so `dermedge --help` works without it."""

from __future__ import annotations

import os

from dermedge.errors import missing_extra


def tensorflow(logical_cpus: int = 0):
    """Import TensorFlow with legacy (tf-keras) Keras; optionally split the CPU into N devices.

    `logical_cpus` lets MirroredStrategy be exercised on a machine without GPUs; it must be set
    before TensorFlow creates its devices, so it only applies on the first call in a process.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf_keras  # noqa: F401  (the Keras that TF_USE_LEGACY_KERAS selects)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise missing_extra("train", "TensorFlow") from exc
    if logical_cpus > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus
            )
        except RuntimeError:
            pass  # devices already initialised in this process; keep what exists
    return tf


def distribution_strategy(name: str, logical_cpus: int = 0):
    """`default` (one device), `mirrored` (all local GPUs, else all logical CPUs), `multiworker`."""
    tf = tensorflow(logical_cpus)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        # Reads the cluster from TF_CONFIG, as every tf.distribute multi-worker job does.
        return tf.distribute.MultiWorkerMirroredStrategy()
    from dermedge.errors import DermedgeError

    raise DermedgeError(f"unknown strategy {name!r}: use default, mirrored or multiworker")
