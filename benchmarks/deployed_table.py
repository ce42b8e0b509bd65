"""Markdown table of `dermedge evaluate` results, one row per variant (see deployed_accuracy.sh)."""

import json
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/deployed")
print("| variant | n | Dice | IoU | thresholded Jaccard | accuracy | balanced accuracy | macro AUC | ECE "
      "| melanoma sens. / spec. | malignant sens. / spec. (p ≥ 0.5) | lesion found |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for seg_path in sorted(folder.glob("*_segment.json")):
    variant = seg_path.name.removesuffix("_segment.json")
    seg = json.loads(seg_path.read_text())
    cls = json.loads((folder / f"{variant}_classify.json").read_text())
    mel, mal = cls["melanoma"], cls["malignant"]
    print(f"| {variant} | {cls['n']} | {seg['dice']:.4f} | {seg['iou']:.4f} | {seg['thresholded_jaccard']:.4f} "
          f"| {cls['accuracy']:.4f} | {cls['balanced_accuracy']:.4f} | {cls['macro_auc']:.4f} | {cls['ece']:.4f} "
          f"| {mel['sensitivity']:.3f} / {mel['specificity']:.3f} | {mal['sensitivity']:.3f} / {mal['specificity']:.3f} "
          f"| {cls['lesion_found_fraction']:.3f} |")
