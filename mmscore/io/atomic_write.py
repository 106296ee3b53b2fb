"""Publish a file all at once: write a temporary sibling, then rename it onto the final name."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_serial = itertools.count()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` in one rename.

    Readers (and a process killed half-way) see the old file or the whole new one, never a torn file. The
    temporary name is hidden (leading dot), unique per process and call, and keeps ``path``'s suffixes, so
    writers that check the extension (``.keras``, ``.weights.h5``, ``.parquet``) accept it. It is removed on
    failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}-{next(_serial)}.{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
