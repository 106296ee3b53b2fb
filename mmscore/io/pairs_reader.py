"""Read pairs from CSV or Parquet in fixed-size chunks, never the whole file at once."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

REQUIRED_COLUMNS = ("text_1", "text_2")
IMAGE_COLUMNS = ("image_1", "image_2")
_PEEK_BYTES = 1 << 20


class InputError(ValueError):
    """The input file cannot be scored (wrong type, unreadable, missing columns); the message is one line."""


@dataclass
class PairsSource:
    """An opened input: its schema, row count when known, and a way to stream it."""

    path: str
    schema: pa.Schema
    num_rows: int | None
    _batches: Iterator[pa.RecordBatch]

    def chunks(self, rows: int, skip: int = 0) -> Iterator[pa.Table]:
        """Tables of exactly ``rows`` rows (the last may be shorter), after skipping ``skip`` rows."""
        pending: list[pa.RecordBatch] = []
        buffered = 0
        try:
            for batch in self._batches:
                if skip:
                    dropped = min(skip, batch.num_rows)
                    batch, skip = batch.slice(dropped), skip - dropped
                pending.append(batch)
                buffered += batch.num_rows
                while buffered >= rows:
                    table = pa.Table.from_batches(pending, self.schema)
                    yield table.slice(0, rows).combine_chunks()
                    rest = table.slice(rows)
                    pending, buffered = rest.to_batches(), rest.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{self.path}: unreadable input ({_first_line(exc)})") from exc
        if buffered:
            yield pa.Table.from_batches(pending, self.schema).combine_chunks()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _check_columns(path: str, names: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)} (found: {', '.join(names)})")


def _open_parquet(path: Path) -> PairsSource:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc
    schema = pf.schema_arrow
    _check_columns(str(path), schema.names)
    return PairsSource(str(path), schema, pf.metadata.num_rows, pf.iter_batches(batch_size=4096))


def _open_csv(name: str, raw: io.BufferedReader) -> PairsSource:
    from pyarrow import csv as pacsv

    head = raw.peek(_PEEK_BYTES)[:_PEEK_BYTES]
    if not head.strip():
        raise InputError(f"{name}: empty file (no header row)")
    try:
        header = next(csv.reader(io.StringIO(head.decode("utf-8-sig", errors="replace"))))
    except (csv.Error, StopIteration) as exc:
        raise InputError(f"{name}: cannot read the CSV header ({exc})") from exc
    _check_columns(name, header)
    if len(set(header)) != len(header):
        raise InputError(f"{name}: duplicated column names in the header")
    # Every column as string: ids are 19-digit numbers that must never become floats.
    types = {column: pa.string() for column in header}
    try:
        reader = pacsv.open_csv(
            raw,
            read_options=pacsv.ReadOptions(block_size=1 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{name}: unreadable CSV ({_first_line(exc)})") from exc
    return PairsSource(name, reader.schema, None, iter(reader))


def open_pairs(path: str | Path) -> PairsSource:
    """Open ``.csv``, ``.parquet`` (``.pq``) or ``-`` (CSV on stdin); raise :class:`InputError` when unusable."""
    if str(path) == "-":
        return _open_csv("<stdin>", io.BufferedReader(sys.stdin.buffer, _PEEK_BYTES))
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; expected .csv or .parquet")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".csv":
        try:
            raw = io.BufferedReader(io.FileIO(path, "r"), _PEEK_BYTES)
        except OSError as exc:
            raise InputError(f"{path}: cannot open ({exc.strerror})") from exc
        return _open_csv(str(path), raw)
    return _open_parquet(path)
