"""Where a file or folder lives: a local path or an object-store URI (``s3://…``, ``gs://…``), one interface
for inputs and outputs.

Every write is all or nothing. On a local disk a file is written under a hidden temporary name and renamed
onto its own; an object store needs no temporary name, because an object becomes visible only when its
upload completes. Credentials and endpoint come from the standard variables (``AWS_*``), as for inputs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from mmscore.errors import InputError, first_line
from mmscore.io.atomic_write import atomic_path


def is_uri(spec: str | Path) -> bool:
    return "://" in str(spec)


@dataclass(frozen=True)
class Storage:
    """One file or folder: the name the user gave (``name``) and where it is (``filesystem``, ``path``)."""

    name: str
    filesystem: pafs.FileSystem
    path: str

    @classmethod
    def at(cls, spec: str | Path) -> Storage:
        """``spec`` as a local path (made absolute: Ray workers have other working folders) or a URI."""
        spec = str(spec)
        if not is_uri(spec):
            path = str(Path(spec).expanduser().absolute())
            return cls(path, pafs.LocalFileSystem(), path)
        try:
            filesystem, path = pafs.FileSystem.from_uri(spec)
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise InputError(f"{spec}: cannot open the storage ({first_line(exc)})") from exc
        return cls(spec.rstrip("/"), filesystem, path.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def child(self, name: str) -> Storage:
        return Storage(f"{self.name}/{name}", self.filesystem, f"{self.path}/{name}")

    def with_suffix_added(self, suffix: str) -> Storage:
        """``OUTPUT`` + ``suffix``, beside it (``out.parquet`` → ``out.parquet.parts``)."""
        return Storage(self.name + suffix, self.filesystem, self.path + suffix)

    def kind(self) -> pafs.FileType:
        (info,) = self.filesystem.get_file_info([self.path])
        return info.type

    def is_file(self) -> bool:
        return self.kind() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self.kind() == pafs.FileType.Directory

    def names(self, pattern: str = "*") -> list[str]:
        """The sorted base names in this folder that match ``pattern`` (none when it does not exist)."""
        listed = self.filesystem.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        return sorted(i.base_name for i in listed if fnmatch.fnmatchcase(i.base_name, pattern))

    def make_dir(self) -> None:
        self.filesystem.create_dir(self.path, recursive=True)

    def remove_dir(self) -> None:
        """This folder and all it holds; nothing when it does not exist."""
        if self.kind() != pafs.FileType.NotFound:
            self.filesystem.delete_dir(self.path)

    def remove(self) -> None:
        """This file; nothing when it does not exist."""
        if self.kind() != pafs.FileType.NotFound:
            self.filesystem.delete_file(self.path)

    def open(self) -> pa.NativeFile:
        return self.filesystem.open_input_file(self.path)

    def read_text(self) -> str:
        with self.open() as f:
            return f.read().decode()

    def write_text(self, text: str) -> None:
        with self.published() as out:
            out.write(text.encode())

    @contextmanager
    def published(self) -> Iterator[pa.NativeFile]:
        """A stream whose bytes replace this file only when the block succeeds; readers never see a torn file."""
        if self.is_local:
            with atomic_path(Path(self.path)) as tmp, pa.OSFile(str(tmp), "wb") as out:
                yield out
            return
        try:
            with self.filesystem.open_output_stream(self.path) as out:
                yield out
        except BaseException:
            # Arrow completes an upload when its stream closes, even after an error: take the object away.
            # (A killed process never completes it, so nothing appears.)
            with suppress(OSError):
                self.remove()
            raise
