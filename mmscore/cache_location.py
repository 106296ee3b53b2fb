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
