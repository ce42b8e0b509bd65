"""Threshold-free scores of the reference and the tail-averaged classifier on the same crops.

Reads the probabilities ensemble_check.py saved here (models in the order reference, tail average):
    OUT=runs/attempts/classify_tail_average python runs/attempts/deployed_gap/ensemble_check.py \
        runs/classify/classifier.keras <tail-average run>/classifier.keras
    python runs/attempts/classify_tail_average/auc_check.py
"""
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

HERE = Path(__file__).parent
LABELS = Path(__file__).parents[1] / "deployed_gap"  # <split>.npz from diagnose.py
MALIGNANT = [0, 1, 4]  # akiec, bcc, mel

for split in ("val", "test"):
    y = np.load(LABELS / f"{split}.npz")["y"]
    crops = {crop: np.load(HERE / f"ensemble_{split}_{crop}.npy") for crop in ("gt", "unet")}
    for crop, probs in crops.items():
        row = []
        for name, p in zip(("reference", "tail-average"), probs):
            row.append(f"{name} BA {balanced_accuracy_score(y, p.argmax(1)):.5f} "
                       f"macroAUC {roc_auc_score(y, p, multi_class='ovr', average='macro'):.5f} "
                       f"malignantAUC {roc_auc_score(np.isin(y, MALIGNANT), p[:, MALIGNANT].sum(1)):.5f}")
        agree = (probs[0].argmax(1) == probs[1].argmax(1)).mean()
        print(f"{split} {crop}-crop: " + " | ".join(row) + f" | top-1 agreement {agree:.3f}")
    stable = [(crops["gt"][i].argmax(1) == crops["unet"][i].argmax(1)).mean() for i in range(2)]
    print(f"{split} GT vs U-Net crop agreement: reference {stable[0]:.3f}, tail-average {stable[1]:.3f}")
