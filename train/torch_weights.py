"""Read a PyTorch state dict saved in torch's legacy (pre-1.6, non-zip) format, without torch and
without running code from the file.

Why not `torch.load` or plain `pickle`: a `.pth` is a pickle, and unpickling calls whatever global
the file names. This reader resolves only the names a state dict needs (the ordered dict, the tensor
rebuild and the storage types) to inert stand-ins; any other global is refused before anything is
called. The tensors come back as NumPy arrays.

The legacy layout, as `torch.serialization._legacy_save` writes it: five pickles (magic number,
protocol version, system info, the state dict, the list of storage keys), then each storage's raw
little-endian bytes, preceded by its element count as an int64.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermedge.errors import DermedgeError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass
class _Storage:
    key: str
    dtype: type
    size: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    """A tensor as the pickle describes it; its values arrive after the pickle, with the storage."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if not self.shape:
            return data[self.offset].copy()
        itemsize = data.itemsize
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) + 1
        if needed > len(data):
            raise DermedgeError(f"tensor reaches past its storage {self.storage.key}: corrupt weights file")
        return np.lib.stride_tricks.as_strided(
            data[self.offset:], self.shape, tuple(s * itemsize for s in self.stride)).copy()


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """Stand-in for torch._utils._rebuild_tensor_v2 (the extra arguments are requires_grad and hooks)."""
    if not isinstance(storage, _Storage):
        raise DermedgeError("weights file: a tensor without a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs; every other name is refused, never imported."""

    def __init__(self, file, source: Path):
        super().__init__(file)
        self.source = source
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise DermedgeError(f"{self.source}: refusing to load, the file names the global {module}.{name}, "
                            "which a plain state dict never needs (loading weights must not run code)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise DermedgeError(f"{self.source}: unexpected persistent reference {pid!r:.60}")
        _, storage_type, key, _location, size, view = pid
        if not isinstance(storage_type, _StorageType) or view is not None:
            raise DermedgeError(f"{self.source}: unsupported storage reference {pid!r:.60}")
        if key not in self.storages:
            self.storages[key] = _Storage(str(key), storage_type.dtype, int(size))
        return self.storages[key]


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """{parameter name: array} from a legacy-format `.pth`. Raises DermedgeError, one line, on a
    file that is missing, truncated, of the zip format, or that names a global outside a state dict."""
    path = Path(path)
    if not path.is_file():
        raise DermedgeError(f"weights file not found: {path}")
    with path.open("rb") as f:
        if f.read(2) == b"PK":
            raise DermedgeError(f"{path}: a zip-format torch file; this reader takes the legacy format only")
        f.seek(0)
        try:
            unpickler = _SafeUnpickler(f, path)
            header = [unpickler.load() for _ in range(3)]
            if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
                raise DermedgeError(f"{path}: not a legacy torch file (magic/protocol mismatch)")
            if not header[2].get("little_endian", False):
                raise DermedgeError(f"{path}: big-endian torch files are not supported")
            state = unpickler.load()
            keys = unpickler.load()
            for key in keys:
                storage = unpickler.storages.get(key)
                if storage is None:
                    raise DermedgeError(f"{path}: storage {key} is listed but no tensor uses it")
                (count,) = struct.unpack("<q", _read_exact(f, 8, path))
                if count != storage.size:
                    raise DermedgeError(f"{path}: storage {key} holds {count} values, expected {storage.size}")
                raw = _read_exact(f, count * np.dtype(storage.dtype).itemsize, path)
                storage.data = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
            if not isinstance(state, dict):
                raise DermedgeError(f"{path}: holds a {type(state).__name__}, not a state dict")
            missing = [s.key for s in unpickler.storages.values() if s.data is None]
            if missing:
                raise DermedgeError(f"{path}: truncated weights file ({len(missing)} storages missing)")
            return {str(name): tensor.to_numpy() for name, tensor in state.items()
                    if isinstance(tensor, _TensorRef)}
        except DermedgeError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
                IndexError, struct.error) as exc:
            raise DermedgeError(f"{path}: truncated or corrupt weights file ({type(exc).__name__})") from None


def _read_exact(f, n: int, path: Path) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DermedgeError(f"{path}: truncated weights file (ends {n - len(data)} bytes early)")
    return data
