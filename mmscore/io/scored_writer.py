"""Write scored chunks as they finish, resumable after a crash, and publish one Parquet file at the end.

Each finished chunk is written atomically as ``OUTPUT.parts/part-NNNNNN.parquet`` (a killed process leaves
only whole parts). ``finish()`` streams the parts, in order, into a temporary file that is renamed onto
OUTPUT, with the run facts in the file's key-value metadata, then removes the parts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmscore.errors import OutputError, ResumeMismatch
from mmscore.io.atomic_write import atomic_path

METADATA_KEY = b"mmscore"
MANIFEST = "manifest.json"


def _reason(exc: OSError) -> str:
    """The OS's words for a write failure, also when Arrow wraps them ("... [errno 28] ...")."""
    code = exc.errno
    if code is None and (found := re.search(r"\[errno (\d+)\]", str(exc))):
        code = int(found.group(1))
    return os.strerror(code) if code else str(exc).splitlines()[0]


class ScoredWriter:
    """``write(table)`` per chunk; ``finish(facts)`` publishes. ``rows_done`` says where a resume starts."""

    def __init__(self, output: Path, run_key: dict, *, resume: bool):
        self.output = Path(output)
        self.parts = self.output.with_name(self.output.name + ".parts")
        self.run_key = run_key
        self.rows_done = 0
        self.part_count = 0
        if resume and self.parts.is_dir():
            self._adopt_existing_parts()
        else:
            self._start_fresh()

    def _start_fresh(self) -> None:
        shutil.rmtree(self.parts, ignore_errors=True)
        self._guard(lambda: self.parts.mkdir(parents=True))
        self._guard(lambda: (self.parts / MANIFEST).write_text(json.dumps(self.run_key, sort_keys=True)))

    def _guard(self, action):
        try:
            return action()
        except OSError as exc:
            raise OutputError(f"cannot write {self.output}: {_reason(exc)}") from exc

    def _adopt_existing_parts(self) -> None:
        if not any(self.parts.glob("part-*.parquet")):
            self._start_fresh()  # nothing to continue from (e.g. killed while cleaning up)
            return
        try:
            previous = json.loads((self.parts / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != self.run_key:
            raise ResumeMismatch(
                f"cannot resume: {self.parts} was written for a different input, model or chunk size; "
                "run again without --resume"
            )
        for path in sorted(self.parts.glob("part-*.parquet")):
            if path.name != self.part_name(self.part_count):
                break  # only a contiguous run of parts counts
            self.rows_done += pq.ParquetFile(path).metadata.num_rows
            self.part_count += 1

    @staticmethod
    def part_name(index: int) -> str:
        return f"part-{index:06d}.parquet"

    def part_path(self, index: int) -> Path:
        return self.parts / self.part_name(index)

    def finished_parts(self) -> set[int]:
        """Indices of the parts on disk; each is whole (written to a hidden temp file, then renamed)."""
        return {int(path.stem.split("-", 1)[1]) for path in self.parts.glob("part-*.parquet")}

    def write(self, table: pa.Table) -> None:
        self._guard(lambda: write_part(self.part_path(self.part_count), table))
        self.rows_done += table.num_rows
        self.part_count += 1

    def finish(self, facts: dict, empty_schema: pa.Schema, part_count: int | None = None) -> None:
        """Concatenate parts ``0 .. part_count - 1`` (default: those this writer wrote or adopted) into OUTPUT,
        atomically, with ``facts`` as metadata; drop the parts."""
        count = self.part_count if part_count is None else part_count
        part_paths = [self.part_path(i) for i in range(count)]
        schema = pq.read_schema(part_paths[0]) if part_paths else empty_schema
        schema = schema.with_metadata({**(schema.metadata or {}), METADATA_KEY: json.dumps(facts).encode()})

        def publish():
            with atomic_path(self.output) as tmp, pq.ParquetWriter(tmp, schema) as writer:
                for path in part_paths:
                    writer.write_table(pq.read_table(path).replace_schema_metadata(schema.metadata))

        self._guard(publish)
        self._remove_parts(part_paths)

    def _remove_parts(self, part_paths: list[Path]) -> None:
        """Last part first, manifest last: a kill part-way leaves a valid prefix for ``--resume``."""
        for path in reversed(part_paths):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.parts, ignore_errors=True)


def write_part(path: Path, table: pa.Table) -> None:
    """One part, whole or not at all: a retried or duplicated writer of the same part just replaces it."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_run_facts(path: Path) -> dict:
    """The run facts ``mmscore score`` stored in a Parquet file's metadata ({} when absent)."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(METADATA_KEY)
    return json.loads(raw) if raw else {}
