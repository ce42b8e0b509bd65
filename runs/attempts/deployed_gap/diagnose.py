"""Where do the 4 points between ground-truth crops (test BA 0.728) and U-Net crops (0.684) go?

For val and test: cut each image with its ground-truth mask and with the fp32 U-Net's cleaned
mask (the runtime's own functions), classify both with the fp32 classifier, and compare the
boxes. Also classifies the U-Net crop at other margins and the whole image, to see whether the
classifier is sensitive to framing. Writes <split>.npz next to this file.
    usage: python runs/attempts/deployed_gap/diagnose.py [BUNDLE]
"""
import csv
import sys
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import balanced_accuracy_score

from edge_runtime import Pipeline
from edge_runtime.image_io import read_image
from edge_runtime.preprocess import crop_to_lesion, lesion_box

HERE = Path(__file__).parent
MARGINS = (0.0, 0.05, 0.15, 0.3, 0.5)
bundle = sys.argv[1] if len(sys.argv) > 1 else "bundle"
pipe = Pipeline.load(bundle, "fp32", num_threads=2)
labels = pipe.labels
rows = list(csv.DictReader(open("runs/classify/split.csv")))
for split in ("val", "test"):
    subset = [r for r in rows if r["split"] == split]
    y = np.array([labels.index(r["label"]) for r in subset])
    gt_probs, unet_probs, margin_probs, whole_probs, boxes = [], [], [], [], []
    for r in subset:
        image = read_image(r["image_path"])
        truth = cv2.imread(r["mask_path"], cv2.IMREAD_GRAYSCALE) > 127
        mask = pipe.lesion_mask(pipe.segment(image), image.shape[:2])
        gt_probs.append(pipe.classify(crop_to_lesion(image, truth, 224, 0.15)[0]))
        unet_probs.append(pipe.classify(crop_to_lesion(image, mask if mask.any() else None, 224, 0.15)[0]))
        margin_probs.append([pipe.classify(crop_to_lesion(image, mask if mask.any() else None, 224, m)[0]) for m in MARGINS])
        whole_probs.append(pipe.classify(cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)))
        g, u = lesion_box(truth), lesion_box(mask) if mask.any() else None
        boxes.append([*(g.as_list() if g else [-1] * 4), *(u.as_list() if u else [-1] * 4)])
    gt_probs, unet_probs, margin_probs, whole_probs = map(np.array, (gt_probs, unet_probs, margin_probs, whole_probs))
    boxes = np.array(boxes)
    np.savez(HERE / f"{split}.npz", y=y, gt=gt_probs, unet=unet_probs, margins=margin_probs, whole=whole_probs, boxes=boxes)
    ba = lambda p: balanced_accuracy_score(y, p.argmax(1))
    print(f"{split}: n={len(y)} BA gt-crop {ba(gt_probs):.4f}  unet-crop {ba(unet_probs):.4f}  whole {ba(whole_probs):.4f}")
    for i, m in enumerate(MARGINS):
        print(f"   unet margin {m}: {ba(margin_probs[:, i]):.4f}")
    print(f"   mean over margins: {ba(margin_probs.mean(1)):.4f}; gt+unet mean {ba(gt_probs + unet_probs):.4f}")
    side = lambda b: np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    ok = boxes[:, 4] >= 0
    ratio = side(boxes[ok, 4:]) / side(boxes[ok, :4])
    print(f"   U-Net/GT box side ratio: median {np.median(ratio):.3f}, p10 {np.percentile(ratio, 10):.3f}, p90 {np.percentile(ratio, 90):.3f}; no lesion {np.sum(~ok)}")
    agree = (gt_probs.argmax(1) == unet_probs.argmax(1)).mean()
    print(f"   top-1 agreement gt vs unet crop: {agree:.3f}")
