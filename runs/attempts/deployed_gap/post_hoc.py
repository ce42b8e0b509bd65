"""Post-hoc checks on the probabilities ensemble_check.py saved (run it first with three models:
reference, frozen-BN, crop-jitter): every 2- and 3-model average, framing stability, and logit
adjustment by the training priors (argmax log p - tau log prior) for a few tau.
    usage: python runs/attempts/deployed_gap/post_hoc.py
"""
import csv
import itertools
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

HERE = Path(__file__).parent
NAMES = ("reference", "frozen-BN", "crop-jitter")
LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
rows = list(csv.DictReader(open(HERE / "../../classify/split.csv")))
train = np.array([LABELS.index(r["label"]) for r in rows if r["split"] == "train"])
log_prior = np.log(np.bincount(train, minlength=7) / len(train))
for split in ("val", "test"):
    y = np.load(HERE / f"{split}.npz")["y"]
    probs = {kind: np.load(HERE / f"ensemble_{split}_{kind}.npy") for kind in ("gt", "unet")}
    for kind, p in probs.items():
        combos = [c for r in (2, 3) for c in itertools.combinations(range(3), r)]
        line = "  ".join(f"{'+'.join(NAMES[i] for i in c)} {balanced_accuracy_score(y, p[list(c)].mean(0).argmax(1)):.3f}"
                         for c in combos)
        print(f"{split} {kind}-crop averages: {line}")
    for i, name in enumerate(NAMES):
        agree = (probs["gt"][i].argmax(1) == probs["unet"][i].argmax(1)).mean()
        adjusted = "  ".join(
            f"tau {tau:+.1f} {balanced_accuracy_score(y, (np.log(probs['unet'][i] + 1e-9) - tau * log_prior).argmax(1)):.3f}"
            for tau in (-0.2, -0.1, 0.0, 0.1, 0.2, 0.3))
        print(f"{split} {name}: GT vs U-Net crop top-1 agreement {agree:.3f}; U-Net crop logit adjustment: {adjusted}")
