"""On-disk cache of encoder outputs keyed by encoder (name + version) and content hash.

A second training run on the same data reads vectors from here and never calls the encoders.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from mmscore.cache_location import user_cache_dir
from mmscore.io.atomic_write import atomic_write_bytes


def content_key(content: bytes | str) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache:
    """``lookup(keys)`` -> the vectors found; ``store(keys, vectors)``; one ``.npy`` per entry."""

    def __init__(self, encoder_id: str, root: Path | None = None):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder_id)
        if len(safe) > 100:  # a preset folder's long path: keep a readable start, stay unique by hash
            safe = f"{safe[:60]}-{content_key(encoder_id)[:16]}"
        self.root = (Path(root) if root else user_cache_dir() / "embeddings") / safe

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for key in set(keys):
            try:
                found[key] = np.load(self._path(key), allow_pickle=False)
            except (OSError, ValueError):
                continue  # absent or torn: recompute
        return found

    def store(self, keys: list[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors, strict=True):
            buf = io.BytesIO()
            np.save(buf, np.asarray(vector, np.float32), allow_pickle=False)
            atomic_write_bytes(self._path(key), buf.getvalue())


def cached_encode(cache: EmbeddingCache, keys: list[str], items: list, encode, dim: int) -> tuple[np.ndarray, int]:
    """Vectors for ``items`` (identified by ``keys``), calling ``encode`` only on cache misses.

    Returns the (len(items), dim) array and how many items were encoded.
    """
    found = cache.lookup(keys)
    missing = {}
    for key, item in zip(keys, items, strict=True):
        if key not in found and key not in missing:
            missing[key] = item
    if missing:
        vectors = encode(list(missing.values()))
        cache.store(list(missing), vectors)
        found.update(zip(missing, vectors, strict=True))
    out = np.zeros((len(keys), dim), np.float32)
    for row, key in enumerate(keys):
        out[row] = found[key]
    return out, len(missing)
