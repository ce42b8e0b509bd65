"""Weight soups of classifiers fine-tuned from the same ImageNet start on the same split, on validation.

Why: classifiers fine-tuned from one pretrained start often sit in one basin, and the uniform mean of
their weights ("model soup", Wortsman et al. 2022) can beat each of them at no inference cost, where a
probability ensemble costs one model per member (docs/experiments.md, *Weight soups*). For each
member, each pair and all of them together: the mean weights, BatchNorm re-estimated on the training
crops (train/run.py, as `--average-last` does), scored on the validation ground-truth crops beside the
members' probability ensemble.

    python benchmarks/weight_soup.py --member ref.keras --member runs/classify/classifier.keras \
        --member ls01.keras [--run runs/classify] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from dermedge.metrics import classification_metrics  # noqa: E402
from dermedge.train.models import load_trained_model  # noqa: E402
from dermedge.train.run import recalibrate_batchnorm  # noqa: E402
from edge_runtime.labels import MALIGNANT_CLASSES  # noqa: E402
from report_json import RunCrops, emit  # noqa: E402  benchmarks/, beside this script


def scores(probs: np.ndarray, targets: np.ndarray, classes) -> dict:
    m = classification_metrics(targets, probs, classes, MALIGNANT_CLASSES)
    return {"balanced_accuracy": round(m["balanced_accuracy"], 4),
            "balanced_accuracy_ci95": [round(x, 3) for x in m["balanced_accuracy_ci95"]],
            "macro_auc": round(m["macro_auc"], 4), "malignant_auc": round(m["malignant"]["auc"], 4),
            "melanoma_auc": round(m["melanoma"]["auc"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member", type=Path, action="append", required=True,
                        help="a classifier.keras (repeat; same architecture, same split)")
    parser.add_argument("--run", type=Path, default=Path("runs/classify"), help="the split and input size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if len(args.member) < 2:
        parser.error("a soup needs at least two --member models")

    run = RunCrops(args.run)
    classes = run.classes
    train = run.crops(run.splits["train"])
    val = run.crops(run.splits["val"])
    names = [p.stem if p.name != "classifier.keras" else p.parent.name for p in args.member]
    model = load_trained_model(args.member[0], "classifier")  # the architecture every soup is set into
    weights = {names[0]: model.get_weights()}
    weights.update({name: load_trained_model(path, "classifier").get_weights()
                    for name, path in zip(names[1:], args.member[1:])})

    def predict() -> np.ndarray:
        return model.predict(val.images.astype(np.float32), batch_size=64, verbose=0)

    probs, rows = {}, {}
    for name in names:
        model.set_weights(weights[name])
        probs[name] = predict()
        rows[name] = scores(probs[name], val.targets, classes)
        print(name, rows[name], flush=True)
    for k in range(2, len(names) + 1):
        for combo in itertools.combinations(names, k):
            model.set_weights([np.mean(layer, axis=0) for layer in zip(*(weights[n] for n in combo))])
            recalibrate_batchnorm(model, train.images, args.batch_size)
            key = "+".join(combo)
            rows[f"soup {key}"] = scores(predict(), val.targets, classes)
            rows[f"ensemble {key}"] = scores(np.mean([probs[n] for n in combo], axis=0), val.targets, classes)
            print(key, rows[f"soup {key}"], rows[f"ensemble {key}"], flush=True)
    emit({"run": str(args.run), "split": "val", "n": int(len(val.targets)),
          "members": {n: str(p) for n, p in zip(names, args.member)}, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
