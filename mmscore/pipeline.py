"""The scoring pipeline: read -> fetch -> decode -> tokenise -> encode -> classify -> write.

The unit of work is a chunk of rows (:class:`ChunkScorer`): one background thread prepares the next
chunk (images fetched and decoded by a thread pool, texts tokenised, rows ordered by length) while the
model scores the current one; each scored chunk is written as it finishes. Memory depends on the chunk
size, never on the number of input rows.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

import mmscore
from mmscore.encoders.pair_tokens import PairTokens
from mmscore.errors import InputError, MmscoreError, ScoringError, one_line
from mmscore.images.decode import decode_image
from mmscore.images.fetcher import DEFERRED, ImageFetcher, image_reference
from mmscore.io.pairs_reader import IMAGE_COLUMNS, ROW_NOTE, PairsSource
from mmscore.io.scored_writer import ScoredOutput, ScoredWriter
from mmscore.labels import LABELS, PROB_COLUMNS
from mmscore.lookahead import lookahead
from mmscore.model.predictor import Predictor

STATUS_COLUMNS = ("image_1_status", "image_2_status", "text_status")
DOMAIN_SCORE, IN_DOMAIN = "in_domain_score", "in_domain"  # see mmscore.model.domain; null without a reference
OUTPUT_COLUMNS = ("pred_label", *PROB_COLUMNS, *STATUS_COLUMNS, DOMAIN_SCORE, IN_DOMAIN)
DOMAIN_NAMES = {True: "in_domain", False: "out_of_domain", None: "unknown"}
# Image statuses that mean "the model saw this image".
SEEN = ("ok", "cached")


@dataclass(frozen=True)
class ScoreOptions:
    batch_size: int = 32
    chunk_batches: int = 8  # rows per written chunk = batch_size * chunk_batches
    fetch_workers: int = 16
    limit: int | None = None
    resume: bool = False
    length_batches: bool = True  # cut batches from rows sorted by length (False: file order, the old way)
    part_chunks: int | None = None  # chunks per written part (a Ray shard); None: the engine's default

    def __post_init__(self):
        if min(self.batch_size, self.chunk_batches, self.fetch_workers) < 1 or self.part_chunks == 0:
            raise ValueError("batch size, chunk batches, fetch workers and part chunks must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")

    @property
    def chunk_rows(self) -> int:
        return self.batch_size * self.chunk_batches


@dataclass
class RunSummary:
    rows: int = 0
    resumed_rows: int = 0
    labels: Counter = field(default_factory=Counter)
    image_statuses: Counter = field(default_factory=Counter)
    text_statuses: Counter = field(default_factory=Counter)
    domain: Counter = field(default_factory=Counter)  # in_domain / out_of_domain / unknown (no reference)
    seconds: float = 0.0
    precision: str = "float32"  # the encoders' number format in this run

    def counts(self) -> dict:
        """The tallies as plain dicts (what a remote worker sends back)."""
        return {
            "labels": dict(self.labels),
            "images": dict(self.image_statuses),
            "texts": dict(self.text_statuses),
            "domain": dict(self.domain),
        }

    def add_counts(self, rows: int, counts: dict) -> None:
        self.rows += rows
        self.labels.update(counts["labels"])
        self.image_statuses.update(counts["images"])
        self.text_statuses.update(counts["texts"])
        self.domain.update(counts.get("domain", {}))

    @property
    def rows_per_second(self) -> float:
        scored = self.rows - self.resumed_rows
        return scored / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PreparedChunk:
    """One chunk ready for the model: tokens, decoded images, masks, lexical features, per-row statuses."""

    table: pa.Table
    images: list[np.ndarray]  # two (n, size, size, 3) uint8 arrays
    image_mask: np.ndarray  # (n, 2) float32, 1 where the image was decoded
    statuses: dict[str, list[str]]
    pair_features: np.ndarray  # (n, d) float32 lexical features of the texts; d = 0 when the model takes none
    order: np.ndarray  # the rows, shortest first: batches are cut in this order (see :func:`length_order`)
    tokens: PairTokens | None = None  # both texts tokenised (given a text encoder)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def batch_rows(self, batch_size: int) -> Iterator[np.ndarray]:
        """Row indices of each model batch, cut from :attr:`order` so a batch holds texts of similar length."""
        for lo in range(0, self.num_rows, batch_size):
            yield self.order[lo : lo + batch_size]

    def in_input_order(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities computed in :attr:`order`, put back in the chunk's input order."""
        restored = np.empty_like(probs)
        restored[self.order] = probs
        return restored


def _texts(table: pa.Table, column: str) -> list[str | None]:
    return table.column(column).cast(pa.string()).to_pylist()


def _text_status(a: str | None, b: str | None) -> str:
    empty = [name for name, t in (("text_1", a), ("text_2", b)) if t is None or not t.strip()]
    return "ok" if not empty else "empty_" + "_and_".join(empty)


def load_image(fetcher: ImageFetcher, ref: object, size: int, wait: bool = True) -> tuple[np.ndarray | None, str]:
    """Fetch and decode one ``image_*`` cell: pixels (or None) and the status to report (``wait=False``: may
    be :data:`DEFERRED`)."""
    fetched = fetcher.fetch(ref, wait)
    if fetched.data is None:
        return None, fetched.status
    decoded = decode_image(fetched.data, size)
    return decoded.pixels, (fetched.status if decoded.pixels is not None else decoded.status)


def load_images(refs: list, fetcher: ImageFetcher, pool: ThreadPoolExecutor, size: int) -> dict:
    """``ref -> (pixels, status)`` for each distinct reference in ``refs``, fetched and decoded once by ``pool``.

    A reference whose host is busy (its name lookup in flight, or all its connections in use) goes to the
    back of the line instead of holding a worker, so a dead or slow host never stalls the others.
    """
    results: dict = {}
    waiting = deque(dict.fromkeys(refs))
    running: dict = {}
    while waiting or running:
        while waiting and len(running) < fetcher.pool_size:
            ref = waiting.popleft()
            running[pool.submit(load_image, fetcher, ref, size, False)] = ref
        done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
        progressed = False
        for future in done:
            ref = running.pop(future)
            pixels, status = future.result()
            if status == DEFERRED:
                waiting.append(ref)
            else:
                results[ref] = (pixels, status)
                progressed = True
        if not progressed:
            time.sleep(0.01)  # only deferred references came back: give the busy hosts a moment
    return results


def image_cells(table: pa.Table) -> dict[str, list]:
    """Each image column's cells (an absent column is a column of empty cells)."""
    n = table.num_rows
    return {c: table.column(c).to_pylist() if c in table.column_names else [None] * n for c in IMAGE_COLUMNS}


def chunk_image_refs(cells: dict[str, list]) -> list:
    """Every image reference of a chunk's :func:`image_cells`, in order (repeats and empty cells included)."""
    return [image_reference(r) for column in cells.values() for r in column]


def chunk_slices(table: pa.Table, rows: int) -> list[pa.Table]:
    """``table`` cut into consecutive chunks of ``rows`` rows (the last may be shorter)."""
    return [table.slice(lo, rows) for lo in range(0, table.num_rows, rows)]


def prepare_chunk(
    table: pa.Table,
    fetcher: ImageFetcher,
    pool: ThreadPoolExecutor,
    size: int,
    pair_features: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    text_encoder=None,
    loaded: dict | None = None,
) -> PreparedChunk:
    """Texts, decoded images, masks, per-row statuses, and (given ``pair_features`` / ``text_encoder``) lexical
    features and tokens, for one chunk. With tokens, rows are ordered by token count; otherwise by characters.
    ``loaded``: the chunk's images already fetched and decoded (:func:`load_images` of its image references)."""
    n = table.num_rows
    notes = [None] * n
    if ROW_NOTE in table.column_names:  # the reader's verdict on the row (malformed, repaired) comes first
        notes, table = table.column(ROW_NOTE).to_pylist(), table.drop_columns([ROW_NOTE])
    t1, t2 = _texts(table, "text_1"), _texts(table, "text_2")
    text_status = [note or _text_status(a, b) for note, a, b in zip(notes, t1, t2, strict=True)]
    images, statuses = [], {"text_status": text_status}
    mask = np.zeros((n, 2), np.float32)
    refs = image_cells(table)
    if loaded is None:  # each distinct reference is fetched and decoded once per chunk, however often it repeats
        loaded = load_images(chunk_image_refs(refs), fetcher, pool, size)
    for side, column in enumerate(IMAGE_COLUMNS):
        results = [loaded[image_reference(r)] for r in refs[column]]
        pixels = np.zeros((n, size, size, 3), np.uint8)
        for row, (array, _status) in enumerate(results):
            if array is not None:
                pixels[row] = array
                mask[row, side] = 1.0
        images.append(pixels)
        statuses[f"{column}_status"] = [status for _array, status in results]
    as_text = [np.array(["" if t is None else t for t in col], dtype=object) for col in (t1, t2)]
    features = pair_features(*as_text) if pair_features else np.zeros((n, 0), np.float32)
    tokens = PairTokens.of(text_encoder, *as_text) if text_encoder is not None and n else None
    # Stable, so rows of equal length keep their input order.
    order = np.argsort(tokens.longest_per_row(), kind="stable") if tokens else length_order(*as_text)
    return PreparedChunk(table, images, mask, statuses, features, order, tokens)


def length_order(text_1: np.ndarray, text_2: np.ndarray) -> np.ndarray:
    """Rows ordered by their longer text (stable): a batch of similar lengths is trimmed to little padding.

    Each batch runs at its longest row's length, so in file order about half of the token slots were padding
    on real tweets. Characters stand in for tokens when the chunk is not tokenised; only the order depends on
    it, never the result.
    """
    longest = np.fromiter((max(len(a), len(b)) for a, b in zip(text_1, text_2, strict=True)), np.int64, len(text_1))
    return np.argsort(longest, kind="stable")


def scored_table(
    chunk: PreparedChunk, probs: np.ndarray, domain: tuple[np.ndarray, np.ndarray] | None = None
) -> pa.Table:
    """The input chunk with the contract's output columns appended (``domain``: the in-domain score and flag
    per row, null without a reference)."""
    table = chunk.table
    for name in OUTPUT_COLUMNS:  # re-scoring a scored file replaces its old predictions
        if name in table.column_names:
            table = table.drop_columns([name])
    table = table.append_column("pred_label", pa.array([LABELS[i] for i in probs.argmax(1)], pa.string()))
    for i, name in enumerate(PROB_COLUMNS):
        table = table.append_column(name, pa.array(probs[:, i], pa.float32()))
    for name in STATUS_COLUMNS:
        table = table.append_column(name, pa.array(chunk.statuses[name], pa.string()))
    score, flag = domain if domain is not None else (None, None)
    nulls = pa.nulls(table.num_rows)
    table = table.append_column(
        DOMAIN_SCORE, pa.array(score, pa.float32()) if score is not None else nulls.cast(pa.float32())
    )
    table = table.append_column(IN_DOMAIN, pa.array(flag, pa.bool_()) if flag is not None else nulls.cast(pa.bool_()))
    return table


def output_schema(input_schema: pa.Schema) -> pa.Schema:
    fields = [f for f in input_schema if f.name not in OUTPUT_COLUMNS]
    fields.append(pa.field("pred_label", pa.string()))
    fields += [pa.field(name, pa.float32()) for name in PROB_COLUMNS]
    fields += [pa.field(name, pa.string()) for name in STATUS_COLUMNS]
    fields += [pa.field(DOMAIN_SCORE, pa.float32()), pa.field(IN_DOMAIN, pa.bool_())]
    return pa.schema(fields)


class ChunkScorer:
    """The per-chunk seam: an input table -> the same rows, in the same order, with the output columns added.

    ``prepare`` fetches, decodes and tokenises (threads, no model); ``score`` runs the model on a prepared
    chunk, batch by batch in length order. The local driver and distributed engines call these two alone.
    """

    def __init__(self, predictor: Predictor, fetcher: ImageFetcher, batch_size: int = 32, length_batches: bool = True):
        self.predictor = predictor
        self.fetcher = fetcher
        self.batch_size = batch_size
        self.length_batches = length_batches

    def prepare(self, table: pa.Table, pool: ThreadPoolExecutor | None, loaded: dict | None = None) -> PreparedChunk:
        """``loaded``: the chunk's images when another stage fetched and decoded them (then no fetching here)."""
        predictor = self.predictor
        size = predictor.image_encoder.image_size
        try:
            chunk = prepare_chunk(
                table, self.fetcher, pool, size, predictor.pair_features, predictor.text_encoder, loaded
            )
        except MmscoreError:
            raise
        except Exception as exc:  # not the input file's fault: say what failed
            raise ScoringError(f"preparing rows failed ({one_line(exc)})") from exc
        if not self.length_batches:
            chunk.order = np.arange(chunk.num_rows)
        return chunk

    def score(self, chunk: PreparedChunk) -> pa.Table:
        import tensorflow as tf

        step, parts, vectors = self.predictor.scoring_step, [], ([], [])
        try:
            for rows in chunk.batch_rows(self.batch_size):
                images = chunk.images[0][rows], chunk.images[1][rows]
                logits, vectors_1, vectors_2 = step(
                    *chunk.tokens.rows(rows), *images, chunk.image_mask[rows], chunk.pair_features[rows]
                )
                parts.append(self.predictor.probabilities(logits.numpy()))
                vectors[0].append(vectors_1.numpy())
                vectors[1].append(vectors_2.numpy())
        except tf.errors.OpError as exc:
            raise ScoringError(f"the model step failed ({one_line(exc)})") from exc
        probs = np.concatenate(parts) if parts else np.zeros((0, len(LABELS)), np.float32)
        domain = self._domain(chunk, [chunk.in_input_order(np.concatenate(v)) for v in vectors] if parts else None)
        return scored_table(chunk, chunk.in_input_order(probs), domain)

    def _domain(self, chunk: PreparedChunk, vectors: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
        """``(in_domain_score, in_domain)`` in input order, or None when the model has no reference."""
        reference = self.predictor.domain
        if reference is None or vectors is None:
            return None
        return reference.score(*vectors, _texts(chunk.table, "text_1"), _texts(chunk.table, "text_2"))

    def score_table(self, table: pa.Table, pool: ThreadPoolExecutor) -> pa.Table:
        return self.score(self.prepare(table, pool))

    def score_stream(self, tables: Iterable[pa.Table], fetch_workers: int) -> Iterator[pa.Table]:
        """Each table scored, in order, the next one prepared in the background while the current one is scored."""
        with ThreadPoolExecutor(fetch_workers, thread_name_prefix="mmscore-fetch") as pool:
            for chunk in lookahead(tables, lambda table: self.prepare(table, pool), 1, "mmscore-prepare"):
                yield self.score(chunk)


def _limited(chunks: Iterator[pa.Table], remaining: int | None) -> Iterator[pa.Table]:
    for table in chunks:
        if remaining is not None:
            if remaining <= 0:
                return
            table = table.slice(0, remaining)
            remaining -= table.num_rows
        yield table


def run_key(source: PairsSource, predictor: Predictor, options: ScoreOptions) -> dict:
    """What must match for ``--resume`` to continue an earlier run's parts."""
    path = Path(source.path)
    stat = path.stat() if path.is_file() else None
    files = {} if stat or not source.files else {"input_files": [f.fingerprint() for f in source.files]}
    return {
        **files,
        "input": str(path.resolve()) if stat else source.path,
        "input_size": stat.st_size if stat else None,
        "input_mtime_ns": stat.st_mtime_ns if stat else None,
        "model": predictor.card.model_id(),
        "offsets": [float(x) for x in predictor.offsets],
        "temperature": predictor.temperature,
        "precision": predictor.precision,
        "chunk_rows": options.chunk_rows,
        "limit": options.limit,
        "mmscore": mmscore.__version__,
    }


def score_pairs(
    source: PairsSource,
    output: ScoredOutput | str | Path,
    predictor: Predictor,
    fetcher: ImageFetcher,
    options: ScoreOptions = ScoreOptions(),
    on_progress: Callable[[int, Counter], None] | None = None,
) -> RunSummary:
    """Score every row of ``source`` into ``output`` (a Parquet file, or a folder of parts). One output row per
    input row, same order."""
    if options.resume and source.path == "<stdin>":
        raise InputError("--resume needs an input file, not stdin")
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    writer = ScoredWriter(output, run_key(source, predictor, options), resume=options.resume)
    summary = RunSummary(rows=writer.rows_done, resumed_rows=writer.rows_done, precision=predictor.precision)
    limit = None if options.limit is None else max(0, options.limit - writer.rows_done)
    scorer = ChunkScorer(predictor, fetcher, options.batch_size, options.length_batches)
    tables = _limited(source.chunks(options.chunk_rows, skip=writer.rows_done), limit)
    part: list[pa.Table] = []  # scored chunks not yet written: a crash costs at most one part's work
    try:
        for scored in scorer.score_stream(tables, options.fetch_workers):
            part.append(scored)
            if len(part) == (options.part_chunks or 1):
                writer.write(pa.concat_tables(part))
                part = []
            count_rows(summary, scored)
            if on_progress:
                on_progress(scored.num_rows, summary.image_statuses)
    except ScoringError as exc:
        raise ScoringError(f"{source.path}: {exc}") from exc.__cause__
    if part:
        writer.write(pa.concat_tables(part))
    summary.seconds = time.perf_counter() - started
    writer.finish(run_facts(summary, source, predictor, options, started_at), output_schema(source.schema))
    return summary


def count_rows(summary: RunSummary, scored: pa.Table) -> None:
    summary.rows += scored.num_rows
    summary.labels.update(scored.column("pred_label").to_pylist())
    for column in IMAGE_COLUMNS:
        summary.image_statuses.update(scored.column(f"{column}_status").to_pylist())
    summary.text_statuses.update(scored.column("text_status").to_pylist())
    summary.domain.update(DOMAIN_NAMES[flag] for flag in scored.column(IN_DOMAIN).to_pylist())


def run_facts(
    summary: RunSummary, source: PairsSource, predictor: Predictor, options: ScoreOptions, started_at: str
) -> dict:
    return {
        "mmscore_version": mmscore.__version__,
        "model_id": predictor.card.model_id(),
        "model_card": {k: getattr(predictor.card, k) for k in ("text_encoder", "image_encoder", "loss", "trained_at")},
        "decision_offsets": [float(x) for x in predictor.offsets],
        "temperature": predictor.temperature,
        "uses_images": predictor.card.uses_images,
        "precision": predictor.precision,
        "input": source.path,
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": summary.rows,
        "resumed_rows": summary.resumed_rows,
        "seconds": round(summary.seconds, 3),
        "rows_per_second": round(summary.rows_per_second, 2),
        "label_counts": dict(summary.labels),
        "image_status_counts": dict(summary.image_statuses),
        "text_status_counts": dict(summary.text_statuses),
        "domain_counts": dict(summary.domain),
        "batch_size": options.batch_size,
        "fetch_workers": options.fetch_workers,
        "part_rows": options.chunk_rows * (options.part_chunks or 1),
    }
