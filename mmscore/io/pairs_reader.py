"""Read pairs from CSV or Parquet in fixed-size chunks, never the whole file at once.

An input is one file, a folder or a glob of files (read in sorted order as one table), or the same as an
object-store URI (``s3://bucket/prefix/``, ``gs://…``) through ``pyarrow.fs``: credentials and endpoint
come from the standard variables (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, …).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import pyarrow as pa

from mmscore import statuses
from mmscore.errors import InputError, first_line
from mmscore.io.storage import Storage, is_uri

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
    files: list[InputFile] = dataclass_field(default_factory=list)  # what was read, in order (none for stdin)
    file_rows: list[int] | None = None  # rows per file, from the Parquet footers (None for CSV)

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


def _open_parquet(name: str, handle) -> tuple[pa.Schema, int, Iterator[pa.RecordBatch]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(handle)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{name}: not a readable Parquet file ({first_line(exc)})") from exc
    check_schema(name, pf.schema_arrow)
    return pf.schema_arrow, pf.metadata.num_rows, pf.iter_batches(batch_size=4096)


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
            yield [], statuses.MALFORMED_ROW
            continue
        if not fields:
            continue  # a blank line is not a row
        note = None
        for i, field in enumerate(fields):
            if (fixed := _repaired(field)) is not None:
                fields[i], note = fixed, statuses.INVALID_UTF8
        yield fields, note


def _string_batch(columns: list[list[str | None]], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(values, pa.string()) for values in columns], schema=schema)


def _csv_batches(reader, header: list[str], schema: pa.Schema, rows_per_batch: int) -> Iterator[pa.RecordBatch]:
    width = len(header)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    notes: list[str | None] = []
    for fields, note in _csv_records(reader):
        if len(fields) != width:
            note = statuses.MALFORMED_ROW  # wrong field count: keep what lines up, pad the rest
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


SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class InputFile:
    """One file of an input: where it is (a local path, or a path inside ``filesystem``), and what it is."""

    name: str  # as shown to users: the local path or the URI
    path: str  # path for ``filesystem``
    filesystem: object  # a pyarrow.fs.FileSystem
    size: int
    mtime_ns: int | None

    @property
    def is_csv(self) -> bool:
        return self.path.lower().endswith(".csv")

    def open(self):
        """A binary stream of the file (seekable: Parquet needs its footer)."""
        try:
            return self.filesystem.open_input_file(self.path)
        except OSError as exc:
            raise InputError(f"{self.name}: cannot open ({first_line(exc)})") from exc

    def fingerprint(self) -> list:
        return [self.name, self.size, self.mtime_ns]


def is_glob(text: str) -> bool:
    """Whether ``text`` is a file pattern (``*``, ``?`` or ``[...]``)."""
    return any(c in text for c in "*?[")


def input_files(spec: str | Path) -> list[InputFile]:
    """The files of an input spec in reading order: a file, a folder, a glob, or any of them as a URI."""
    import pyarrow.fs as pafs

    spec = str(spec)
    # A pattern is not valid URI syntax: parse the folder part, then match the last part against it.
    base, pattern = spec.rsplit("/", 1) if is_uri(spec) and is_glob(spec) else (spec, "")
    place = Storage.at(base)
    filesystem, path = place.filesystem, f"{place.path}/{pattern}" if pattern else place.path
    scheme = spec.split("://", 1)[0] + "://" if is_uri(spec) else ""
    try:
        infos = _matching(filesystem, path)
    except OSError as exc:
        raise InputError(f"{spec}: cannot list ({first_line(exc)})") from exc
    named = [(info, scheme + info.path if scheme else info.path) for info in infos]
    files = [
        InputFile(name, info.path, filesystem, info.size or 0, info.mtime_ns)
        for info, name in named
        if info.type == pafs.FileType.File
    ]
    return _checked(spec, files)


def _matching(filesystem, path: str) -> list:
    """File infos for ``path``: the file itself, a folder's files, or a glob's matches (sorted)."""
    import pyarrow.fs as pafs

    if is_glob(path):
        parent, pattern = path.rsplit("/", 1) if "/" in path else ("", path)
        if is_glob(parent):  # keep listings bounded: only the last component may be a pattern
            raise InputError(f"{path}: only the last part of a path may hold * ? [ ]")
        listed = filesystem.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
        return sorted((i for i in listed if _is_data(i) and fnmatch.fnmatchcase(i.base_name, pattern)), key=_path)
    (info,) = filesystem.get_file_info([path])
    if info.type == pafs.FileType.Directory:
        listed = filesystem.get_file_info(pafs.FileSelector(path))
        return sorted((i for i in listed if _is_data(i) and i.base_name.lower().endswith(SUFFIXES)), key=_path)
    return [info] if info.type == pafs.FileType.File else []


def _is_data(info) -> bool:
    """Names starting with "." or "_" are not data (temporary files, run records), as for pyarrow and Spark."""
    return not info.base_name.startswith((".", "_"))


def _path(info) -> str:
    return info.path


def _checked(spec: str, files: list[InputFile]) -> list[InputFile]:
    if not files:
        if is_glob(spec):
            raise InputError(f"{spec}: no file matches")
        if not is_uri(spec) and Path(spec).expanduser().is_dir():
            raise InputError(f"{spec}: no .csv or .parquet files in this folder")
        raise InputError(f"{spec}: no such file")
    for f in files:
        _check_suffix(f.name)
    if len({f.is_csv for f in files}) > 1:
        raise InputError(f"{spec}: mixes CSV and Parquet files; use one kind")
    return files


def _check_suffix(name: str) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{name}: unknown file type {suffix or '(none)'!r}; expected .csv or .parquet")


def _open_one(f: InputFile) -> PairsSource:
    handle = f.open()
    if f.is_csv:
        source = _open_csv(f.name, io.BufferedReader(handle, _READ_BUFFER))
    else:
        schema, rows, batches = _open_parquet(f.name, handle)
        source = PairsSource(f.name, schema, rows, batches, file_rows=[rows])
    source.files = [f]
    return source


def _same_columns(first: PairsSource, other: PairsSource) -> Iterator[pa.RecordBatch]:
    """``other``'s batches in ``first``'s schema, or :class:`InputError` naming the file that differs."""
    if other.schema.names != first.schema.names:
        raise InputError(
            f"{other.path}: columns {', '.join(other.schema.names)} differ from {first.path}'s "
            f"({', '.join(first.schema.names)})"
        )
    target = first.batch_schema or first.schema
    for batch in other._batches:
        try:
            yield batch.cast(target) if batch.schema != target else batch
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"{other.path}: column types differ from {first.path}'s ({first_line(exc)})") from exc


def _open_many(spec: str, files: list[InputFile]) -> PairsSource:
    """Several files as one table: the first file sets the columns; the others are opened when reached."""
    first = _open_one(files[0])

    def rest() -> Iterator[pa.RecordBatch]:
        for f in files[1:]:
            yield from _same_columns(first, _open_one(f))

    file_rows = None
    if not first.batch_schema:  # Parquet: every file's footer says how many rows it has
        file_rows = [first.num_rows, *(parquet_rows(f) for f in files[1:])]
    batches = itertools.chain(first._batches, rest())
    rows = sum(file_rows) if file_rows is not None else None
    return PairsSource(spec, first.schema, rows, batches, first.batch_schema, files, file_rows)


def parquet_rows(f: InputFile) -> int:
    import pyarrow.parquet as pq

    try:
        with f.open() as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{f.name}: not a readable Parquet file ({first_line(exc)})") from exc


def open_pairs(path: str | Path) -> PairsSource:
    """Open ``.csv``/``.parquet`` (``.pq``) files — one, a folder, a glob or a URI of them — or ``-`` (CSV on
    stdin); raise :class:`InputError` when unusable."""
    if str(path) == "-":
        return _open_csv("<stdin>", io.BufferedReader(sys.stdin.buffer, _READ_BUFFER))
    spec = str(path)
    if not is_uri(spec) and not is_glob(spec) and not Path(spec).is_dir():
        _check_suffix(spec)  # before looking for the file: a wrong type is the clearer message
    files = input_files(spec)
    if len(files) == 1 and files[0].name == str(Path(spec).expanduser().absolute()):
        source = _open_one(files[0])
        source.path = spec  # a single local file keeps the name the user gave
        return source
    return _open_many(spec, files)


def read_row_range(files: list[tuple[InputFile, int]], start: int, rows: int, schema: pa.Schema) -> pa.Table:
    """Rows ``[start, start + rows)`` of Parquet ``files`` (each with its row count) read as one table in
    ``schema``; only the row groups that hold them are read."""
    import pyarrow.parquet as pq

    pieces, offset, end = [], 0, start + rows
    for f, count in files:
        lo, hi = max(start, offset) - offset, min(end, offset + count) - offset
        offset += count
        if lo >= hi:
            continue
        with f.open() as handle:
            pf = pq.ParquetFile(handle)
            bounds = list(itertools.accumulate(pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)))
            first = next(g for g, upto in enumerate(bounds) if upto > lo)
            last = next(g for g, upto in enumerate(bounds) if upto >= hi)
            groups = pf.read_row_groups(list(range(first, last + 1)))
            group_start = bounds[first - 1] if first else 0
            pieces.append(groups.slice(lo - group_start, hi - lo).cast(schema))
    return pa.concat_tables(pieces).combine_chunks() if pieces else schema.empty_table()


def default_image_root(input: str | Path) -> Path:
    """Where relative image paths are read from when no image root is given: the input file's folder, the
    input folder itself, or the current folder (stdin, globs, object-store URIs)."""
    spec = str(input)
    if spec in ("-", "<stdin>") or is_uri(spec) or is_glob(spec):
        return Path.cwd()
    path = Path(spec).expanduser().resolve()
    return path if path.is_dir() else path.parent
