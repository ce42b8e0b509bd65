"""Segmentation loss and metrics: BCE + soft Dice, and thresholded Dice/IoU for monitoring."""

from __future__ import annotations

from dermedge.train.tf_env import tensorflow

tf = tensorflow()  # this module is only imported once training starts


def _flatten(y_true, y_pred):
    batch = tf.shape(y_true)[0]
    return tf.reshape(tf.cast(y_true, tf.float32), [batch, -1]), tf.reshape(y_pred, [batch, -1])


def bce_dice_loss(y_true, y_pred):
    """BCE for per-pixel calibration plus soft Dice for the overlap the task is scored on."""
    t, p = _flatten(y_true, y_pred)
    bce = tf.reduce_mean(tf.keras.losses.binary_crossentropy(t[..., None], p[..., None]), axis=-1)
    soft_dice = (2.0 * tf.reduce_sum(t * p, -1) + 1.0) / (tf.reduce_sum(t, -1) + tf.reduce_sum(p, -1) + 1.0)
    return bce + (1.0 - soft_dice)


def dice_metric(y_true, y_pred):
    """Per-image Dice of the 0.5-thresholded mask (empty vs empty counts as 1)."""
    t, p = _flatten(y_true, y_pred)
    p = tf.cast(p > 0.5, tf.float32)
    total = tf.reduce_sum(t, -1) + tf.reduce_sum(p, -1)
    return tf.where(total > 0, 2.0 * tf.reduce_sum(t * p, -1) / tf.maximum(total, 1e-7), 1.0)


def iou_metric(y_true, y_pred):
    t, p = _flatten(y_true, y_pred)
    p = tf.cast(p > 0.5, tf.float32)
    intersection = tf.reduce_sum(t * p, -1)
    union = tf.reduce_sum(t, -1) + tf.reduce_sum(p, -1) - intersection
    return tf.where(union > 0, intersection / tf.maximum(union, 1e-7), 1.0)


dice_metric.__name__ = "dice"
iou_metric.__name__ = "iou"

CUSTOM_OBJECTS = {"bce_dice_loss": bce_dice_loss, "dice": dice_metric, "iou": iou_metric}
