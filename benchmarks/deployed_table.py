"""Markdown tables of `dermedge evaluate` results, one row per variant (see deployed_accuracy.sh):
task figures, then the trust figures (calibration, operating point, inconclusive answers)."""

import json
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/deployed")
rows = []
for seg_path in sorted(folder.glob("*_segment.json")):
    variant = seg_path.name.removesuffix("_segment.json")
    rows.append((variant, json.loads(seg_path.read_text()),
                 json.loads((folder / f"{variant}_classify.json").read_text())))

print("| variant | n | Dice | IoU | thresholded Jaccard | accuracy | balanced accuracy [95% CI] | macro AUC "
      "| melanoma sens. / spec. | lesion found |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for variant, seg, cls in rows:
    mel = cls["melanoma"]
    low, high = cls["balanced_accuracy_ci95"]  # bootstrap over the test images
    print(f"| {variant} | {cls['n']} | {seg['dice']:.4f} | {seg['iou']:.4f} | {seg['thresholded_jaccard']:.4f} "
          f"| {cls['accuracy']:.4f} | {cls['balanced_accuracy']:.4f} [{low:.3f}, {high:.3f}] | {cls['macro_auc']:.4f} "
          f"| {mel['sensitivity']:.3f} / {mel['specificity']:.3f} | {cls['lesion_found_fraction']:.3f} |")

print()
print("| variant | temperature | ECE before → after | malignant threshold | malignant sens. / spec. "
      "| inconclusive (uncertain / gate) | accuracy / bal. acc. of conclusive | coverage 90%: accuracy |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for variant, _, cls in rows:
    cal, inc, mal = cls["calibration"], cls["inconclusive"], cls["malignant"]
    uncertain = inc["by_reason"].get("uncertain", 0)
    gate = sum(inc["by_reason"].values()) - uncertain
    kept = inc["conclusive"]
    at90 = min(cls["coverage_curve"], key=lambda c: abs(c["coverage"] - 0.9))
    print(f"| {variant} | {cal['temperature']:.3f} | {cal['ece_uncalibrated']:.4f} → {cal['ece_calibrated']:.4f} "
          f"| {cls['malignant_threshold']:.3f} | {mal['sensitivity']:.3f} / {mal['specificity']:.3f} "
          f"| {inc['rate']:.1%} ({uncertain} / {gate}) | {kept['accuracy']:.4f} / {kept['balanced_accuracy']:.4f} "
          f"| {at90['accuracy']:.4f} |")
