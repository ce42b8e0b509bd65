"""Does averaging two classifiers help, on ground-truth crops and on the fp32 U-Net's crops?

U-Net masks come from the fp32 variant of BUNDLE (default `bundle`, the full export), crops from
the runtime's crop function. Models used: the reference (runs/classify), the earlier frozen-BN
reference (git show b1ec851:runs/classify/classifier.keras > /tmp/frozen_bn.keras) and the
attempts' scratch models. Labels come from diagnose.py's <split>.npz: run that first.
    usage: [BUNDLE=bundle] [OUT=dir] python runs/attempts/deployed_gap/ensemble_check.py MODEL.keras [MODEL.keras ...]
Probabilities are saved as OUT/ensemble_<split>_<gt|unet>.npy (OUT defaults to this folder).
"""
import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import cv2
import numpy as np
import tensorflow as tf
from sklearn.metrics import balanced_accuracy_score

from edge_runtime import Pipeline
from edge_runtime.image_io import read_image
from edge_runtime.preprocess import crop_to_lesion

HERE = Path(__file__).parent
OUT = Path(os.environ.get("OUT", HERE))
models = [tf.keras.models.load_model(p, compile=False) for p in sys.argv[1:]]
pipe = Pipeline.load(os.environ.get("BUNDLE", "bundle"), "fp32", num_threads=2)
rows = list(csv.DictReader(open("runs/classify/split.csv")))
for split in ("val", "test"):
    saved = np.load(HERE / f"{split}.npz")
    subset = [r for r in rows if r["split"] == split]
    gt, unet = [], []
    for r in subset:
        image = read_image(r["image_path"])
        truth = cv2.imread(r["mask_path"], cv2.IMREAD_GRAYSCALE) > 127
        mask = pipe.lesion_mask(pipe.segment(image), image.shape[:2])
        gt.append(crop_to_lesion(image, truth, 224, 0.15)[0])
        unet.append(crop_to_lesion(image, mask if mask.any() else None, 224, 0.15)[0])
    y = saved["y"]
    for name, crops in (("gt", np.array(gt)), ("unet", np.array(unet))):
        probs = [m.predict(crops.astype(np.float32), batch_size=64, verbose=0) for m in models]
        line = "  ".join(f"m{i} {balanced_accuracy_score(y, p.argmax(1)):.4f}" for i, p in enumerate(probs))
        mean = np.mean(probs, axis=0)
        np.save(OUT / f"ensemble_{split}_{name}.npy", np.array(probs))
        print(f"{split} {name}-crop: {line}  mean {balanced_accuracy_score(y, mean.argmax(1)):.4f}", flush=True)
