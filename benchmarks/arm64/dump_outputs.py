"""The pipeline's raw outputs on a set of images, for comparing two machines array by array.

`predict --json` rounds probabilities to six places and carries no mask; this keeps, per image, the
lesion mask (bit-packed), the segmenter's probability map and the class probabilities at full
precision. Run with the same images and variant on each machine (here: x86 and emulated arm64) and
let `compare.py` read both. Needs only the base install (edge_runtime, numpy).

    python dump_outputs.py --variant int8 --threads 1 --out int8.npz IMG ...
    python dump_outputs.py --variant int8 --threads 1 --out int8.npz --example
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_runtime import Pipeline, read_image
from edge_runtime.synthetic import draw_lesion

EXAMPLE = "<synthetic example>"


def example_image() -> np.ndarray:
    """The lesion `dermedge predict --example` draws (same seed and size)."""
    image, _ = draw_lesion(np.random.default_rng(7), width=400, height=300)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--example", action="store_true", help="add the drawn example lesion")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    pipeline = Pipeline.load(None, args.variant, args.threads)
    sources = [(Path(p).name, lambda p=p: read_image(p)) for p in args.images]
    if args.example:
        sources.append((EXAMPLE, example_image))
    arrays: dict[str, np.ndarray] = {"names": np.array([name for name, _ in sources]),
                                     "labels": np.array(pipeline.bundle.labels)}
    for i, (_, load) in enumerate(sources):
        image = load()
        result = pipeline.predict(image)
        arrays[f"mask_{i}"] = np.packbits(result.mask)
        arrays[f"mask_shape_{i}"] = np.array(result.mask.shape)
        arrays[f"segment_{i}"] = pipeline.segment(image).astype(np.float32)
        arrays[f"probs_{i}"] = np.array([result.probabilities[k] for k in pipeline.bundle.labels], np.float64)
    np.savez_compressed(args.out, backend=np.array(pipeline.backend), **arrays)
    print(f"{args.variant}: {len(sources)} images -> {args.out} (backend {pipeline.backend})")


if __name__ == "__main__":
    main()
