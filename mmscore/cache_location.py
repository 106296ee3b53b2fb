"""Where mmscore keeps its caches (images, embeddings, converted weights)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``$MMSCORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmscore``, else ``~/.cache/mmscore``."""
    if explicit := os.environ.get("MMSCORE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmscore"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` so that readers see either nothing or the whole file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(data):x}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
