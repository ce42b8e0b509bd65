"""How often a bundle's segmenter finds a lesion where there is none: lesion-free patches of real
HAM10000 photos.

Why: HAM10000 has no lesion-free image, so no segmenter trained on it was ever shown bare skin, yet
a camera held over bare skin should say `no_lesion`. Each patch is the first quarter of a photo
(top-left, top-right, bottom-left, bottom-right) holding no ground-truth lesion pixel, resized
back to the photo's size; the dark vignette corners of many dermatoscopes are in them, as on a
device. A patch counts as a phantom lesion when the pipeline's cleaned mask is one the lesion gate
would analyse (neither `no_lesion` nor `lesion_too_small`; a lesion cut by the border counts).

    python benchmarks/bare_skin.py --bundle B [--bundle B2 ...] [--split val] [--limit 300]
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dermedge.datasets import read_label_table, read_mask, read_rgb
from report_json import bundle_split_parser, emit  # benchmarks/, beside this script
from edge_runtime.pipeline import Pipeline
from edge_runtime.quality import assess_lesion

NOT_A_LESION = ("no_lesion", "lesion_too_small")


def lesion_free_patches(images: Path, masks: Path, ids: list[str], limit: int):
    """Yield (image id, patch) for the first lesion-free quarter of each photo, up to `limit`."""
    found = 0
    for image_id in ids:
        mask = read_mask(masks / f"{image_id}_segmentation.png")
        image = read_rgb(images / f"{image_id}.jpg")
        if mask is None or image is None:
            continue
        h, w = mask.shape
        for y0, x0 in ((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)):
            if not mask[y0:y0 + h // 2, x0:x0 + w // 2].any():
                patch = image[y0:y0 + h // 2, x0:x0 + w // 2]
                yield image_id, cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)
                found += 1
                break
        if found >= limit:
            return


def main() -> None:
    parser = bundle_split_parser(__doc__.splitlines()[0], "int8")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()

    bundles = args.bundle or [None]
    pipelines = {str(b or "shipped"): Pipeline.load(b, args.variant, num_threads=1) for b in bundles}
    ids = read_label_table(args.labels, args.split).ids
    counts = {name: 0 for name in pipelines}
    peaks: dict[str, list[float]] = {name: [] for name in pipelines}
    n = 0
    for _, patch in lesion_free_patches(args.data / "images", args.data / "masks", ids, args.limit):
        n += 1
        for name, pipeline in pipelines.items():
            probability = pipeline.segment(patch)  # the lesion gate needs the mask only: no classifier
            lesion = assess_lesion(pipeline.lesion_mask(probability, patch.shape[:2]), pipeline.quality)
            counts[name] += lesion.problem not in NOT_A_LESION
            peaks[name].append(float(probability.max()))
    report = {"split": args.split, "variant": args.variant, "patches": n,
              "bundles": {name: {"phantom_lesions": counts[name], "phantom_fraction": counts[name] / max(n, 1),
                                 "median_peak_probability": float(np.median(peaks[name])) if n else None}
                          for name in pipelines}}
    emit(report, args.json)


if __name__ == "__main__":
    main()
