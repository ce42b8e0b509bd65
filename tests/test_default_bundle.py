"""The bundle shipped inside the package: intact, documented, and as good as its manifest says."""

import pytest

from edge_runtime.bundle import DEFAULT_BUNDLE, load_bundle
from edge_runtime.image_io import read_image
from edge_runtime.pipeline import Pipeline

pytestmark = pytest.mark.runtime  # base install only


def test_default_bundle_is_intact_and_small():
    bundle = load_bundle()
    assert bundle.root == DEFAULT_BUNDLE
    for name, variant in bundle.variants.items():
        assert variant["format"] == "tflite"
        for model in ("segmenter", "classifier"):
            bundle.read(name, model)  # raises on a sha256 mismatch
    default = bundle.manifest["default_variant"]
    sizes = sum(f["bytes"] for f in bundle.variants[default]["files"].values())
    assert sizes <= 6e6, "the default segmenter + classifier must stay within 6 MB"
    everything = sum(path.stat().st_size for path in DEFAULT_BUNDLE.iterdir())
    assert everything <= 12e6, "the bundle shipped in the package must stay within 12 MB"
    assert bundle.manifest["dataset"]["licence"] == "CC BY-NC-SA 4.0"
    assert bundle.manifest["training"]["classifier"]["command"].startswith("dermedge train classify")


@pytest.mark.realdata
def test_default_pipeline_on_held_out_images(shared_ham10000):
    """The deployed default variant on 60 test-split images: masks as good as the export measured."""
    import csv
    from pathlib import Path

    from dermedge.datasets import read_mask
    from dermedge.metrics import dice

    split = Path(__file__).resolve().parents[1] / "runs" / "classify" / "split.csv"
    rows = [r for r in csv.DictReader(split.open()) if r["split"] == "test"][:60]
    pipeline = Pipeline.load()
    dices = []
    for row in rows:
        image = read_image(shared_ham10000 / "images" / f"{row['image_id']}.jpg")
        mask = pipeline.predict(image).mask
        dices.append(dice(mask, read_mask(shared_ham10000 / "masks" / f"{row['image_id']}_segmentation.png")))
    assert sum(dices) / len(dices) > 0.88
