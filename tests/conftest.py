"""Shared fixtures and the test selection.

The runtime's tests (`@pytest.mark.runtime`) need only the base install plus pytest and hypothesis:
on a device, `python -m pytest -m runtime`. Everything else skips there (TensorFlow, the [eval]
extra's scikit-learn and scipy), so the whole suite also passes on a base install.
"""

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from synthetic_data import make_ham10000  # noqa: E402

SHARED_HAM10000 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"


def pytest_collection_modifyitems(config, items):
    """Slow tests run only when `-m` names them (`-m slow`, `-m "runtime or slow"`).

    Not `addopts = "-m 'not slow'"`: a second `-m` on the command line replaces that one, so
    `-m runtime` would bring the slow tests back in.
    """
    if re.search(r"\bslow\b", config.option.markexpr or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def ham_dir(tmp_path_factory) -> Path:
    """A synthetic HAM10000-layout dataset: 7 classes x 4 lesions x 2 images, 64x48."""
    return make_ham10000(tmp_path_factory.mktemp("ham"))


@pytest.fixture(scope="session")
def shared_ham10000() -> Path:
    if not (SHARED_HAM10000 / "HAM10000_metadata.csv").is_file():
        pytest.skip("../shared/data/ham10000 is not here")
    return SHARED_HAM10000


@pytest.fixture(scope="session")
def tiny_runs(ham_dir, tmp_path_factory):
    """A tiny trained segmenter and classifier (one short epoch each) with their run folders."""
    pytest.importorskip("tensorflow")
    from dermedge.train.classify import ClassifyConfig, train_classifier
    from dermedge.train.segment import SegmentConfig, train_segmenter

    root = tmp_path_factory.mktemp("runs")
    data = dict(images=str(ham_dir / "images"), labels=str(ham_dir / "HAM10000_metadata.csv"),
                masks=str(ham_dir / "masks"), verbose=0)
    train_segmenter(SegmentConfig(out=str(root / "segment"), input_size=32, base_filters=4, depth=2,
                                  epochs=2, batch_size=8, **data))
    # Shades of grey on: the option travels from training through the export's manifest to the runtime's crop.
    train_classifier(ClassifyConfig(out=str(root / "classify"), input_size=32, head_epochs=1, epochs=1,
                                    batch_size=8, imbalance="class-weights", colour_constancy="shades-of-grey",
                                    **data))
    return root


def has_coreml() -> bool:
    try:
        import coremltools  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def tiny_bundle(tiny_runs, tmp_path_factory):
    """Every variant of the tiny models exported into one bundle (Core ML where it installs)."""
    from typer.testing import CliRunner

    from dermedge.commands.cli import app
    from dermedge.export.formats import VARIANTS

    out = tmp_path_factory.mktemp("export") / "bundle"
    variants = [v.name for v in VARIANTS if v.format == "tflite" or has_coreml()]
    result = CliRunner().invoke(app, [
        "export", "--segmenter", str(tiny_runs / "segment" / "segmenter.keras"),
        "--classifier", str(tiny_runs / "classify" / "classifier.keras"), "--out", str(out),
        "--representative", "8", "--agreement-floor", "0", "--fine-tune-epochs", "1",
        "--variants", ",".join(variants), "--zip"])
    assert result.exit_code == 0, result.output
    return out
