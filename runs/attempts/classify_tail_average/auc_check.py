"""Threshold-free scores and agreement of classifiers on the same crops.

Reads the probabilities ensemble_check.py saved in DIR (one row per model, in the order given there):
    OUT=DIR python runs/attempts/deployed_gap/ensemble_check.py MODEL.keras [MODEL.keras ...]
    python runs/attempts/classify_tail_average/auc_check.py DIR NAME [NAME ...]
Here DIR is seed1/, whose files hold `reference tail-average tail-average-seed1`; naming only the
first two scores those two (auc_output.txt beside this script).
"""
import csv
import itertools
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from edge_runtime.labels import HAM10000_CLASSES, MALIGNANT_CLASSES

SPLIT_CSV = Path(__file__).parents[2] / "classify" / "split.csv"  # the rows, in ensemble_check's order
MALIGNANT = [HAM10000_CLASSES.index(c) for c in sorted(MALIGNANT_CLASSES)]

folder, names = Path(sys.argv[1]), sys.argv[2:]
rows = list(csv.DictReader(open(SPLIT_CSV)))
for split in ("val", "test"):
    y = np.array([HAM10000_CLASSES.index(r["label"]) for r in rows if r["split"] == split])
    crops = {crop: np.load(folder / f"ensemble_{split}_{crop}.npy") for crop in ("gt", "unet")}
    for crop, probs in crops.items():
        for name, p in zip(names, probs):
            print(f"{split} {crop}-crop {name}: BA {balanced_accuracy_score(y, p.argmax(1)):.5f} "
                  f"macroAUC {roc_auc_score(y, p, multi_class='ovr', average='macro'):.5f} "
                  f"malignantAUC {roc_auc_score(np.isin(y, MALIGNANT), p[:, MALIGNANT].sum(1)):.5f}")
        for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
            agree = (probs[i].argmax(1) == probs[j].argmax(1)).mean()
            print(f"{split} {crop}-crop top-1 agreement {a} vs {b}: {agree:.3f}")
    for i, name in enumerate(names):
        stable = (crops["gt"][i].argmax(1) == crops["unet"][i].argmax(1)).mean()
        print(f"{split} GT vs U-Net crop agreement {name}: {stable:.3f}")
