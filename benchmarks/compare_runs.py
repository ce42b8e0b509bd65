"""Paired comparison of two classifier runs on one split, from the predictions each run writes.

Why: a recipe change is chosen on validation, where balanced accuracy swings by several points with
the luck of ~20 `df` and `vasc` images. The two runs' intervals overlap almost always; the question
is the interval of their *difference* on the same images (a paired bootstrap), for balanced
accuracy, macro AUC and the malignant (mel + bcc + akiec) AUC, with the per-class recalls that say
which classes carry the change. It reads `<run>/<split>_predictions.npz`: no model, no TensorFlow.

    python benchmarks/compare_runs.py runs/classify /tmp/candidate --split val \
        [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dermedge.metrics import (BOOTSTRAP_RESAMPLES, bootstrap_balanced_accuracy, bootstrap_picks,
                              classification_metrics, interval95)
from edge_runtime.labels import MALIGNANT_CLASSES
from report_json import paired_comparison_main, paired_figures_markdown  # benchmarks/, beside this script


def load_predictions(run: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = run / f"{split}_predictions.npz"
    if not path.exists():
        sys.exit(f"error: {path} not found (a classifier run's --out folder holds it)")
    with np.load(path, allow_pickle=False) as data:
        return data["probabilities"], data["labels"], data["image_ids"]


def aucs(probabilities: np.ndarray, labels: np.ndarray, malignant: list[int]) -> np.ndarray:
    """(macro one-vs-rest AUC, malignant AUC), as `classification_metrics` computes them, without
    the rest of its report: this runs once per bootstrap resample."""
    from sklearn.metrics import roc_auc_score

    macro = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in np.unique(labels)])
    return np.array([macro, roc_auc_score(np.isin(labels, malignant), probabilities[:, malignant].sum(axis=1))])


def compare(baseline: Path, candidate: Path, split: str, resamples: int = BOOTSTRAP_RESAMPLES,
            seed: int = 0) -> dict:
    p_base, labels, ids = load_predictions(baseline, split)
    p_cand, labels_cand, ids_cand = load_predictions(candidate, split)
    if not (np.array_equal(ids, ids_cand) and np.array_equal(labels, labels_cand)):
        sys.exit(f"error: the two runs' {split} images differ: compare runs made on the same split")
    classes = tuple(json.loads((baseline / "summary.json").read_text())["classes"])
    malignant = [i for i, c in enumerate(classes) if c in MALIGNANT_CLASSES]
    metrics = {who: classification_metrics(labels, p, classes, MALIGNANT_CLASSES)
               for who, p in (("baseline", p_base), ("candidate", p_cand))}

    ba = bootstrap_balanced_accuracy(labels, [p_cand.argmax(1), p_base.argmax(1)], len(classes), resamples, seed)
    # the balanced accuracy's resamples (same n, count and seed): one paired draw for every figure
    auc_deltas = np.array([aucs(p_cand[picks], labels[picks], malignant) - aucs(p_base[picks], labels[picks], malignant)
                           for picks in bootstrap_picks(len(labels), resamples, seed)])
    intervals = {"balanced_accuracy": interval95(ba[:, 0] - ba[:, 1]),
                 "macro_auc": interval95(auc_deltas[:, 0]), "malignant_auc": interval95(auc_deltas[:, 1])}

    def figure(m: dict, name: str) -> float:
        return m["malignant"]["auc"] if name == "malignant_auc" else m[name]

    present = [c for c in classes if metrics["baseline"]["per_class"][c]["support"]]
    return {
        "split": split, "n": int(len(labels)), "baseline": str(baseline), "candidate": str(candidate),
        "resamples": resamples,
        "figures": {name: {"baseline": round(figure(metrics["baseline"], name), 4),
                           "candidate": round(figure(metrics["candidate"], name), 4),
                           "delta": round(figure(metrics["candidate"], name) - figure(metrics["baseline"], name), 4),
                           "delta_ci95": [round(x, 4) for x in interval]}
                    for name, interval in intervals.items()},
        "top1_agreement": round(float((p_base.argmax(1) == p_cand.argmax(1)).mean()), 4),
        "support": {c: metrics["baseline"]["per_class"][c]["support"] for c in classes},
        "recall": {who: {c: round(m["per_class"][c]["recall"], 3) for c in present} for who, m in metrics.items()},
    }


def markdown(report: dict) -> str:
    lines = paired_figures_markdown(report, f"top-1 agreement {report['top1_agreement']:.3f}")
    classes = list(report["recall"]["baseline"])
    lines += ["", "| recall | " + " | ".join(f"{c} ({report['support'][c]})" for c in classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for who in ("baseline", "candidate"):
        lines.append(f"| {who} | " + " | ".join(f"{report['recall'][who][c]:.3f}" for c in classes) + " |")
    return "\n".join(lines)


def main() -> None:
    paired_comparison_main(__doc__.splitlines()[0], compare, markdown, ("val", "test", "train"), "runs/classify")


if __name__ == "__main__":
    main()
