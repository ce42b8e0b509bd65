"""Grad-CAM (Selvaraju et al. 2017) for the classifier: where in the lesion crop the evidence for a
class lies. Uses the Keras model (gradients need it), on the crop the deployed pipeline cuts, so
the picture explains the decision a device makes on that image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dermedge.errors import DermedgeError
from dermedge.train.tf_env import tensorflow


def grad_cam(model, crop: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(heatmap 0..1 at crop size, class probabilities, explained class) for one RGB crop.

    The classifier is a chain: input -> normalise -> backbone (last conv features) -> pool ->
    dropout -> dense softmax. The class score is taken before the softmax, as Grad-CAM asks.
    """
    tf = tensorflow()
    names = [layer.name for layer in model.layers]
    if "backbone" not in names or not isinstance(model.layers[-1], tf.keras.layers.Dense):
        raise DermedgeError("Grad-CAM needs a classifier built by `dermedge train classify` "
                            "(a backbone followed by a dense head)")
    head = model.layers[-1]
    x = tf.constant(crop[None].astype(np.float32))
    with tf.GradientTape() as tape:
        features = None
        for layer in model.layers[1:-1]:
            x = layer(x, training=False)
            if layer.name == "backbone":
                features = x
                tape.watch(features)
        logits = tf.matmul(x, head.kernel) + head.bias
        probabilities = tf.nn.softmax(logits)[0].numpy()
        chosen = int(np.argmax(probabilities)) if class_index is None else class_index
        score = logits[0, chosen]
    gradients = tape.gradient(score, features)[0].numpy()
    weights = gradients.mean(axis=(0, 1))
    cam = np.maximum((features[0].numpy() * weights).sum(axis=-1), 0)
    cam = cam / cam.max() if cam.max() > 0 else cam
    heatmap = cv2.resize(cam.astype(np.float32), crop.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    return np.clip(heatmap, 0, 1), probabilities, chosen


def heatmap_overlay(crop: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    colours = cv2.cvtColor(cv2.applyColorMap((heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return (crop * (1 - alpha) + colours * alpha).astype(np.uint8)


def explain(image: np.ndarray, classifier_path: Path, bundle=None, variant: str | None = None,
            class_name: str | None = None) -> dict:
    """Segment and crop with the bundle (as deployed), explain the Keras classifier on that crop.

    Returns the panel image (the photo with the crop box | the crop with its heatmap) and figures.
    """
    from edge_runtime.pipeline import Pipeline, check_image
    from dermedge.train.models import load_trained_model

    pipeline = Pipeline.load(bundle, variant)
    if class_name is not None and class_name not in pipeline.labels:
        raise DermedgeError(f"unknown class {class_name!r}; the labels are {', '.join(pipeline.labels)}")
    model = load_trained_model(classifier_path, "classifier")
    size = int(model.inputs[0].shape[1])
    image = check_image(image, pipeline.max_pixels)
    located = pipeline.locate(image, size)
    crop, box, mask = located.crop, located.box, located.mask
    index = None if class_name is None else pipeline.labels.index(class_name)
    heatmap, probabilities, chosen = grad_cam(model, crop, index)
    photo = image.copy()
    if box is not None:
        x0, y0, x1, y1 = box.as_list()
        cv2.rectangle(photo, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 0), max(1, image.shape[1] // 200))
    scale = size / photo.shape[0]
    photo = cv2.resize(photo, (max(1, round(photo.shape[1] * scale)), size), interpolation=cv2.INTER_AREA)
    panel = np.concatenate([photo, np.full((size, 4, 3), 255, np.uint8), heatmap_overlay(crop, heatmap)], axis=1)
    return {"panel": panel, "class": pipeline.labels[chosen], "probability": float(probabilities[chosen]),
            "probabilities": dict(zip(pipeline.labels, map(float, probabilities))),
            "lesion_found": bool(mask.any()), "box": box.as_list() if box else None}
