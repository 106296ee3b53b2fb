"""Write scored chunks as they finish, resumable after a crash, and publish the result at the end.

Each finished chunk (or Ray shard) is written whole as a part, ``part-NNNNNN.parquet``, beside a record of
what the run is (``_mmscore_run.json``, which ``--resume`` checks); a killed process leaves only whole
parts. Two layouts:

- a file (``-o out.parquet``): parts go to ``out.parquet.parts/``; ``finish()`` streams them, in order, into
  OUTPUT in one atomic publish, with the run facts in the file's key-value metadata, then removes them;
- a folder (``--output-dir DIR``): the parts stay in DIR as the output, read in name order as one table by
  pandas, pyarrow, Spark or ``mmscore report``; ``finish()`` writes the run facts to ``DIR/_mmscore.json``.
  Files whose names start with ``_`` or ``.`` are not data, by the usual convention of those readers.

OUTPUT may be a local path or an object-store URI (:mod:`mmscore.io.storage`). On an object store a
publish that fails part-way removes OUTPUT (Arrow cannot abandon an upload), and the parts stay for
``--resume``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileType

from mmscore.errors import InputError, OutputError, ResumeMismatch
from mmscore.io.storage import Storage, is_uri
from mmscore.lookahead import lookahead

METADATA_KEY = b"mmscore"
RUN_KEY_FILE = "_mmscore_run.json"
FACTS_FILE = "_mmscore.json"
PARTS = "part-*.parquet"
ASSEMBLY_READ_AHEAD = 8  # parts read ahead while one file is assembled on an object store
OURS = (PARTS, ".*.part-*.parquet", ".*._mmscore*.json")  # parts and the temporary files they are written as


@dataclass(frozen=True)
class ScoredOutput:
    """Where a run's rows go: one Parquet file, or (``folder``) a folder of ordered parts kept as they are."""

    spec: str
    folder: bool = False

    def check(self) -> None:
        """One-line :class:`InputError` for an output that cannot work, before any scoring starts."""
        if not self.folder and Path(self.spec.rstrip("/")).suffix.lower() not in (".parquet", ".pq"):
            raise InputError(f"{self.spec}: output must be a .parquet file (or use --output-dir for a folder)")
        target = Storage.at(self.spec)
        try:
            kind = target.kind()
            if is_uri(self.spec) and not _bucket_exists(target):
                raise InputError(f"{self.spec}: no such bucket")
        except OSError as exc:
            raise InputError(f"{self.spec}: cannot reach the storage ({_reason(exc)})") from exc
        if self.folder and kind == FileType.File:
            raise InputError(f"{self.spec}: is a file; --output-dir needs a folder")
        if self.folder and kind == FileType.Directory:
            _refuse_foreign_folder(target, InputError)
        if not self.folder and kind == FileType.Directory:
            raise InputError(f"{self.spec}: is a folder; -o needs a .parquet file name (or use --output-dir)")

    def check_apart(self, inputs: list) -> None:
        """Refuse an output folder that holds input files (``InputFile``s): a new run clears the folder first."""
        if not self.folder:
            return  # a file is replaced only after every row was read
        inside = _comparable(Storage.at(self.spec)) + "/"
        for f in inputs:
            if _comparable(Storage(f.name, f.filesystem, f.path)).startswith(inside):
                raise InputError(f"{f.name}: the input is inside --output-dir {self.spec}; choose another folder")


def _comparable(place: Storage) -> str:
    return os.path.realpath(place.path) if place.is_local else place.path


def _refuse_foreign_folder(folder: Storage, error: type[Exception]) -> list[str]:
    """The folder's names, unless it holds files and no record of an mmscore run: never clear a user's folder."""
    names = folder.names()
    if names and RUN_KEY_FILE not in names:
        raise error(f"{folder.name}: the folder holds files mmscore did not write; choose a new or empty folder")
    return names


def _bucket_exists(target: Storage) -> bool:
    bucket = target.path.split("/", 1)[0]
    return Storage(bucket, target.filesystem, bucket).is_dir()


def _reason(exc: OSError) -> str:
    """The OS's words for a write failure, also when Arrow wraps them ("... [errno 28] ...")."""
    code = exc.errno
    if code is None and (found := re.search(r"\[errno (\d+)\]", str(exc))):
        code = int(found.group(1))
    return os.strerror(code) if code else str(exc).splitlines()[0]


class ScoredWriter:
    """``write(table)`` per chunk; ``finish(facts)`` publishes. ``rows_done`` says where a resume starts."""

    def __init__(self, output: ScoredOutput | str | Path, run_key: dict, *, resume: bool):
        self.output = output if isinstance(output, ScoredOutput) else ScoredOutput(str(output))
        self.target = Storage.at(self.output.spec)
        self.parts = self.target if self.output.folder else self.target.with_suffix_added(".parts")
        self.run_key = run_key
        self.part_count = 0
        self._adopted_parts = 0
        self._adopted_rows: int | None = 0  # None: not counted yet (Ray resumes by shard and never needs it)
        self._rows_written = 0
        if resume and self._guard(lambda: self.parts.names(PARTS)):
            self._adopt_existing_parts()
        else:
            self._start_fresh()

    def _guard(self, action):
        try:
            return action()
        except OSError as exc:
            raise OutputError(f"cannot write {self.output.spec}: {_reason(exc)}") from exc

    def _start_fresh(self) -> None:
        def start():
            if self.output.folder:
                self._clear_folder()
            else:
                self.parts.remove_dir()
            self.parts.make_dir()
            self.parts.child(RUN_KEY_FILE).write_text(json.dumps(self.run_key, sort_keys=True))

        self._guard(start)

    def _clear_folder(self) -> None:
        """Remove an earlier run's files from the output folder; refuse a folder mmscore did not write."""
        names = _refuse_foreign_folder(self.parts, OutputError)
        # the facts first (the folder stops claiming to be complete), the run record last (a kill part-way
        # leaves a folder that is still recognisably mmscore's); hidden names: a killed writer's temp files
        for name in sorted(names, key=lambda n: (n != FACTS_FILE, n == RUN_KEY_FILE)):
            if name in (RUN_KEY_FILE, FACTS_FILE) or any(fnmatch.fnmatchcase(name, p) for p in OURS):
                self.parts.child(name).remove()

    def _adopt_existing_parts(self) -> None:
        try:
            previous = json.loads(self.parts.child(RUN_KEY_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != self.run_key:
            raise ResumeMismatch(
                f"cannot resume: {self.parts.name} was written for a different input, model or chunk size; "
                "run again without --resume"
            )
        for name in self._guard(lambda: self.parts.names(PARTS)):
            if name != self.part_name(self.part_count):
                break  # only a contiguous run of parts counts
            self.part_count += 1
        self._adopted_parts, self._adopted_rows = self.part_count, None

    @property
    def rows_done(self) -> int:
        """Rows in the adopted and written parts: where the local engine continues (footers read once)."""
        if self._adopted_rows is None:
            parts = [self.part(i) for i in range(self._adopted_parts)]
            self._adopted_rows = self._guard(lambda: sum(_num_rows(part) for part in parts))
        return self._adopted_rows + self._rows_written

    @staticmethod
    def part_name(index: int) -> str:
        return f"part-{index:06d}.parquet"

    def part(self, index: int) -> Storage:
        return self.parts.child(self.part_name(index))

    def finished_parts(self) -> set[int]:
        """Indices of the parts written so far; each is whole (see :func:`write_part`)."""
        return {int(name[5:-8]) for name in self._guard(lambda: self.parts.names(PARTS))}

    def write(self, table: pa.Table) -> None:
        self._guard(lambda: write_part(self.part(self.part_count), table))
        self._rows_written += table.num_rows
        self.part_count += 1

    def finish(self, facts: dict, empty_schema: pa.Schema, part_count: int | None = None) -> None:
        """Publish parts ``0 .. part_count - 1`` (default: those this writer wrote or adopted) with ``facts``."""
        count = self.part_count if part_count is None else part_count
        if self.output.folder:
            self._guard(lambda: self._finish_folder(facts, empty_schema, count))
            return
        parts = [self.part(i) for i in range(count)]
        self._guard(lambda: self._publish_file(facts, empty_schema, parts))
        self._guard(lambda: self._remove_parts(parts))

    def _publish_file(self, facts: dict, empty_schema: pa.Schema, parts: list[Storage]) -> None:
        schema = _read_schema(parts[0]) if parts else empty_schema
        schema = schema.with_metadata({**(schema.metadata or {}), METADATA_KEY: json.dumps(facts).encode()})
        # On an object store each part is a request to wait for: read a few ahead (memory: a few parts).
        depth = 1 if self.target.is_local else ASSEMBLY_READ_AHEAD
        with self.target.published() as out, pq.ParquetWriter(out, schema) as writer:
            for table in lookahead(parts, _read_table, depth, "mmscore-assemble"):
                writer.write_table(table.replace_schema_metadata(schema.metadata))

    def _finish_folder(self, facts: dict, empty_schema: pa.Schema, count: int) -> None:
        """The parts are the output (one empty part when there are no rows, so the folder still reads as a
        table with the output columns); the facts are written last."""
        if count == 0:
            write_part(self.part(0), empty_schema.empty_table())
        self.parts.child(FACTS_FILE).write_text(json.dumps(facts))

    def _remove_parts(self, parts: list[Storage]) -> None:
        """On a disk: last part first, run record last, so a kill part-way leaves a valid prefix for ``--resume``.
        On an object store: one batched delete (a request per part costs as much as the assembly itself)."""
        if self.parts.is_local:
            for part in reversed(parts):
                part.remove()
        self.parts.remove_dir()


def write_part(part: Storage, table: pa.Table) -> None:
    """One part, whole or not at all: a retried or duplicated writer of the same part just replaces it."""
    with part.published() as out:
        pq.write_table(table, out)


def _num_rows(part: Storage) -> int:
    with part.open() as f:
        return pq.ParquetFile(f).metadata.num_rows


def _read_table(part: Storage) -> pa.Table:
    with part.open() as f:
        return pq.read_table(f)


def _read_schema(part: Storage) -> pa.Schema:
    with part.open() as f:
        return pq.read_schema(f)


def read_run_facts(path: str | Path) -> dict:
    """The run facts ``mmscore score`` stored with its output, a file or a folder ({} when absent)."""
    output = Storage.at(path)
    if output.is_dir():
        facts = output.child(FACTS_FILE)
        return json.loads(facts.read_text()) if facts.is_file() else {}
    metadata = _read_schema(output).metadata or {}
    raw = metadata.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def scored_parts(spec: str | Path) -> list[Storage]:
    """The Parquet files holding a scored output, in row order: the file itself, or a folder's parts."""
    output = Storage.at(spec)
    kind = output.kind()
    if kind == FileType.Directory:
        parts = [output.child(name) for name in output.names(PARTS)]
        if not parts:
            raise InputError(f"{spec}: no part-*.parquet files in this folder (not written by `mmscore score`)")
        return parts
    if kind != FileType.File:
        raise InputError(f"{spec}: no such file")
    return [output]
