"""Read a PyTorch *legacy* (pre-1.6) checkpoint into NumPy arrays, without torch.

The legacy format is a sequence of pickles followed by raw storage bytes:
magic number, protocol version, system info, the state dict (tensors refer to
storages by a persistent id), the list of storage keys, then for each key an
8-byte element count and the little-endian data. Only the few globals a state
dict needs are allowed; anything else (``os.system``, ``builtins.eval``, ...)
raises :class:`UnsafeCheckpointError` before it can run.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
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


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint asked for a global outside the state-dict allowlist."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass
class _Storage:
    key: str
    dtype: type
    size: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        base = self.storage.data
        item = base.itemsize
        if not self.shape:
            return base[self.offset].copy()
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :],
            shape=self.shape,
            strides=tuple(s * item for s in self.stride),
        )
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(f"checkpoint refers to {module}.{name}, which is not allowed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, size = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"unexpected storage type {storage_type!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(str(key), storage_type.dtype, int(size))
        return self.storages[key]


def _safe_load(file: BinaryIO):
    """Unpickle one object allowing no globals at all (header pickles)."""
    return _StateDictUnpickler(file).load()


def load_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return the checkpoint's tensors as ``{name: ndarray}``."""
    with open(path, "rb") as fh:
        return read_legacy_state_dict(fh)


def read_legacy_state_dict(fh: BinaryIO) -> dict[str, np.ndarray]:
    magic = _safe_load(fh)
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch checkpoint (bad magic number)")
    _protocol = _safe_load(fh)
    sys_info = _safe_load(fh)
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise ValueError("big-endian checkpoints are not supported")
    unpickler = _StateDictUnpickler(fh)
    state = unpickler.load()
    keys = _safe_load(fh)
    for key in keys:
        storage = unpickler.storages[key]
        (count,) = struct.unpack("<q", fh.read(8))
        nbytes = count * np.dtype(storage.dtype).itemsize
        raw = fh.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError("checkpoint is truncated")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if not isinstance(state, dict):
        raise ValueError("checkpoint does not hold a state dict")
    return {name: ref.to_numpy() for name, ref in state.items() if isinstance(ref, _TensorRef)}


def loads_legacy_state_dict(blob: bytes) -> dict[str, np.ndarray]:
    return read_legacy_state_dict(io.BytesIO(blob))
