"""Content-addressed on-disk image cache, safe to share between concurrent runs.

Layout under the root: ``blobs/ab/<sha256 of bytes>`` holds image bytes; ``urls/cd/<sha256 of url>``
holds the sha256 of the bytes that URL served. Both are written with temp file + rename, so a reader
sees a whole file or none. A blob whose bytes no longer hash to its name (torn disk, tampering) is
treated as a miss and deleted. No part of a URL ever becomes part of a path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmscore.cache_location import user_cache_dir
from mmscore.io.atomic_write import atomic_write_bytes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImageCache:
    """``get(url)`` / ``put(url, data)`` keyed by URL, stored by content hash."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else user_cache_dir() / "images"

    def _url_entry(self, url: str) -> Path:
        key = _sha256(url.encode("utf-8"))
        return self.root / "urls" / key[:2] / key

    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest

    def get(self, url: str) -> bytes | None:
        """The cached bytes for ``url``, or None when absent or corrupt."""
        try:
            digest = self._url_entry(url).read_text().strip()
            blob = self._blob(digest)
            data = blob.read_bytes()
        except (OSError, ValueError):
            return None
        if len(digest) != 64 or _sha256(data) != digest:
            blob.unlink(missing_ok=True)
            return None
        return data

    def put(self, url: str, data: bytes) -> None:
        digest = _sha256(data)
        blob = self._blob(digest)
        if not blob.exists():
            atomic_write_bytes(blob, data)
        atomic_write_bytes(self._url_entry(url), digest.encode())
