"""How a bundle's segmenter treats lesions that touch the photo's border: Dice, mask size and the
`lesion_cut_by_border` gate, against the ground-truth masks of real HAM10000 photos.

Why: a segmenter taught that dark frame corners and lesion-free skin are not lesion could trim
lesions that run off the image, which would both shrink the crop and let the border gate pass a
lesion it should reject. Drawn test frames cannot tell; real photos can. Bundles are compared on
the same images; the gate's decision on the ground-truth mask is the reference.

    python benchmarks/border_lesions.py --bundle B [--bundle B2 ...] [--split val] [--json OUT]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermedge.datasets import read_label_table, read_mask, read_rgb
from report_json import bundle_split_parser, emit  # benchmarks/, beside this script
from edge_runtime.pipeline import Pipeline
from edge_runtime.quality import assess_lesion, border_fraction

CUT = "lesion_cut_by_border"


def main() -> None:
    parser = bundle_split_parser(__doc__.splitlines()[0], "int8")
    args = parser.parse_args()

    pipelines = {str(b or "shipped"): Pipeline.load(b, args.variant, num_threads=2) for b in args.bundle or [None]}
    truth_border, truth_cut, truth_area = [], [], []
    dice = {name: [] for name in pipelines}
    area = {name: [] for name in pipelines}
    cut = {name: [] for name in pipelines}
    for image_id in read_label_table(args.labels, args.split).ids:
        image = read_rgb(args.data / "images" / f"{image_id}.jpg")
        truth = read_mask(args.data / "masks" / f"{image_id}_segmentation.png")
        if image is None or truth is None:
            continue
        truth = truth > 0
        truth_border.append(border_fraction(truth))
        truth_cut.append(assess_lesion(truth).problem == CUT)
        truth_area.append(truth.mean())
        for name, pipeline in pipelines.items():
            mask = pipeline.lesion_mask(pipeline.segment(image), image.shape[:2])
            dice[name].append(2 * np.count_nonzero(mask & truth) / max(mask.sum() + truth.sum(), 1))
            area[name].append(mask.mean())
            cut[name].append(assess_lesion(mask, pipeline.quality).problem == CUT)

    border, gate, sizes = np.array(truth_border), np.array(truth_cut), np.array(truth_area)
    groups = {"all": border >= 0, "touching the border": border > 0, "cut by the border (gate on truth)": gate}
    report = {"split": args.split, "variant": args.variant, "images": len(border), "bundles": {}}
    for name in pipelines:
        d, a, c = np.array(dice[name]), np.array(area[name]), np.array(cut[name])
        report["bundles"][name] = {
            "groups": {g: {"n": int(sel.sum()), "mean_dice": float(d[sel].mean()),
                           "median_area_ratio": float(np.median(a[sel] / np.maximum(sizes[sel], 1e-9)))}
                       for g, sel in groups.items() if sel.any()},
            "border_gate": {"rejected": int(c.sum()), "truth_rejected": int(gate.sum()),
                            "recall": float((c & gate).sum() / max(gate.sum(), 1)),
                            "precision": float((c & gate).sum() / max(c.sum(), 1)),
                            "agreement": float((c == gate).mean())}}
    emit(report, args.json)


if __name__ == "__main__":
    main()
