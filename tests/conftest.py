import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from synthetic_data import make_ham10000  # noqa: E402

SHARED_HAM10000 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"


@pytest.fixture(scope="session")
def ham_dir(tmp_path_factory) -> Path:
    """A synthetic HAM10000-layout dataset: 7 classes x 4 lesions x 2 images, 64x48."""
    return make_ham10000(tmp_path_factory.mktemp("ham"))


@pytest.fixture(scope="session")
def shared_ham10000() -> Path:
    if not (SHARED_HAM10000 / "HAM10000_metadata.csv").is_file():
        pytest.skip("../shared/data/ham10000 is not here")
    return SHARED_HAM10000
