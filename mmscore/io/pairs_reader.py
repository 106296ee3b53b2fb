"""Read pairs from CSV or Parquet in fixed-size chunks, never the whole file at once."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mmscore.errors import InputError, first_line

REQUIRED_COLUMNS = ("text_1", "text_2")
# Per-row note from the CSV reader (invalid_utf8, malformed_row); becomes text_status, never an output column.
ROW_NOTE = "__mmscore_row_note__"
IMAGE_COLUMNS = ("image_1", "image_2")
_READ_BUFFER = 1 << 20
# A field may be large (a 1 MB text is fine), but an unbalanced quote must not swallow a whole file.
CSV_FIELD_LIMIT = 16 * 1024 * 1024


@dataclass
class PairsSource:
    """An opened input: its columns' schema, row count when known, and a way to stream it.

    Batches may carry one more column than ``schema``: :data:`ROW_NOTE`.
    """

    path: str
    schema: pa.Schema
    num_rows: int | None
    _batches: Iterator[pa.RecordBatch]
    batch_schema: pa.Schema | None = None

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
                    table = pa.Table.from_batches(pending, self.batch_schema or self.schema)
                    yield table.slice(0, rows).combine_chunks()
                    rest = table.slice(rows)
                    pending, buffered = rest.to_batches(), rest.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{self.path}: unreadable input ({first_line(exc)})") from exc
        if buffered:
            yield pa.Table.from_batches(pending, self.batch_schema or self.schema).combine_chunks()


def _check_columns(path: str, names: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)} (found: {', '.join(names)})")


def check_schema(name: str, schema: pa.Schema) -> None:
    """Raise :class:`InputError` unless ``schema`` has the required text columns, holding text."""
    _check_columns(name, schema.names)
    for column in REQUIRED_COLUMNS:
        kind = schema.field(column).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            raise InputError(f"{name}: column {column} holds {kind}, not text")


def _open_parquet(path: Path) -> PairsSource:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({first_line(exc)})") from exc
    schema = pf.schema_arrow
    check_schema(str(path), schema)
    return PairsSource(str(path), schema, pf.metadata.num_rows, pf.iter_batches(batch_size=4096))


def _repaired(field: str) -> str | None:
    """``field`` with undecodable bytes replaced by U+FFFD, or None when it was valid UTF-8."""
    try:
        field.encode("utf-8")
    except UnicodeEncodeError:
        return field.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return None


def _csv_records(reader) -> Iterator[tuple[list[str], str | None]]:
    """Each CSV record with a note: None, ``invalid_utf8`` (repaired) or ``malformed_row``."""
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:  # e.g. a field beyond the size limit: keep a row for it, keep going
            yield [], "malformed_row"
            continue
        if not fields:
            continue  # a blank line is not a row
        note = None
        for i, field in enumerate(fields):
            if (fixed := _repaired(field)) is not None:
                fields[i], note = fixed, "invalid_utf8"
        yield fields, note


def _string_batch(columns: list[list[str | None]], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(values, pa.string()) for values in columns], schema=schema)


def _csv_batches(reader, header: list[str], schema: pa.Schema, rows_per_batch: int) -> Iterator[pa.RecordBatch]:
    width = len(header)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    notes: list[str | None] = []
    for fields, note in _csv_records(reader):
        if len(fields) != width:
            note = "malformed_row"  # wrong field count: keep what lines up, pad the rest
            fields = (fields + [None] * width)[:width]
        for column, value in zip(columns, fields, strict=True):
            column.append(value)
        notes.append(note)
        if len(notes) == rows_per_batch:
            yield _string_batch([*columns, notes], schema)
            columns, notes = [[] for _ in range(width)], []
    if notes:
        yield _string_batch([*columns, notes], schema)


def _open_csv(name: str, raw: io.BufferedReader) -> PairsSource:
    # Python's csv module rather than Arrow's: it lets a bad record become a row with a status instead of
    # stopping the run, and parsing costs far less than scoring. Every column is a string, so 19-digit
    # ids never become floats; undecodable bytes are kept (surrogateescape) and repaired per field.
    # The csv module's limit is process-wide; it is set here, where CSV is read, not at import.
    csv.field_size_limit(CSV_FIELD_LIMIT)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)  # strict: a stray quote is reported, not silently absorbed
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{name}: cannot read the CSV header ({exc})") from exc
    except OSError as exc:
        raise InputError(f"{name}: unreadable CSV ({exc.strerror or exc})") from exc
    if not header:
        raise InputError(f"{name}: empty file (no header row)")
    header = [_repaired(h) or h for h in header]
    _check_columns(name, header)
    if len(set(header)) != len(header):
        raise InputError(f"{name}: duplicated column names in the header")
    schema = pa.schema([pa.field(column, pa.string()) for column in header])
    batch_schema = schema.append(pa.field(ROW_NOTE, pa.string()))
    return PairsSource(name, schema, None, _csv_batches(reader, header, batch_schema, 4096), batch_schema)


def open_pairs(path: str | Path) -> PairsSource:
    """Open ``.csv``, ``.parquet`` (``.pq``) or ``-`` (CSV on stdin); raise :class:`InputError` when unusable."""
    if str(path) == "-":
        return _open_csv("<stdin>", io.BufferedReader(sys.stdin.buffer, _READ_BUFFER))
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; expected .csv or .parquet")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".csv":
        try:
            raw = io.BufferedReader(io.FileIO(path, "r"), _READ_BUFFER)
        except OSError as exc:
            raise InputError(f"{path}: cannot open ({exc.strerror})") from exc
        return _open_csv(str(path), raw)
    return _open_parquet(path)
