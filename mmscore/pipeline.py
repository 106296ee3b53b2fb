"""The scoring pipeline: read -> fetch -> decode -> tokenise -> encode -> classify -> write.

A bounded producer prepares chunks of rows (images fetched and decoded by a thread pool, one chunk
ahead of the model) and feeds fixed-size batches into ``tf.data``, which tokenises in parallel and
prefetches while the model runs. Scored chunks are written as they finish; memory depends on the
chunk size, never on the number of input rows.
"""

from __future__ import annotations

import queue
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

import mmscore
from mmscore.images.decode import decode_image
from mmscore.images.fetcher import DEFERRED, ImageFetcher, image_reference
from mmscore.io.pairs_reader import IMAGE_COLUMNS, ROW_NOTE, InputError, PairsSource
from mmscore.io.scored_writer import ScoredWriter
from mmscore.labels import LABELS, PROB_COLUMNS
from mmscore.model.predictor import Predictor

STATUS_COLUMNS = ("image_1_status", "image_2_status", "text_status")
OUTPUT_COLUMNS = ("pred_label", *PROB_COLUMNS, *STATUS_COLUMNS)
# Image statuses that mean "the model saw this image".
SEEN = ("ok", "cached")


class ScoringError(RuntimeError):
    """Scoring stopped for a reason that is not the input file's: the message names what failed, in one line."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


@dataclass(frozen=True)
class ScoreOptions:
    batch_size: int = 32
    chunk_batches: int = 8  # rows per written chunk = batch_size * chunk_batches
    fetch_workers: int = 16
    limit: int | None = None
    resume: bool = False

    def __post_init__(self):
        if self.batch_size < 1 or self.chunk_batches < 1 or self.fetch_workers < 1:
            raise ValueError("batch size, chunk batches and fetch workers must be at least 1")
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
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        scored = self.rows - self.resumed_rows
        return scored / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PreparedChunk:
    table: pa.Table
    text_1: np.ndarray
    text_2: np.ndarray
    images: list[np.ndarray]  # two (n, size, size, 3) uint8 arrays
    image_mask: np.ndarray  # (n, 2) float32, 1 where the image was decoded
    statuses: dict[str, list[str]]
    pair_features: np.ndarray  # (n, d) float32 lexical features of the texts; d = 0 when the model takes none
    order: np.ndarray  # the rows, shortest texts first (:func:`length_order`): batches are cut in this order

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
    """``ref -> (pixels, status)`` for distinct references, fetched and decoded by ``pool``.

    A reference whose host is busy (its name lookup in flight, or all its connections in use) goes to the
    back of the line instead of holding a worker, so a dead or slow host never stalls the others.
    """
    results: dict = {}
    waiting = deque(refs)
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


def prepare_chunk(
    table: pa.Table,
    fetcher: ImageFetcher,
    pool: ThreadPoolExecutor,
    size: int,
    pair_features: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> PreparedChunk:
    """Texts, decoded images, masks, per-row statuses and (given ``pair_features``) text features for one chunk."""
    n = table.num_rows
    notes = [None] * n
    if ROW_NOTE in table.column_names:  # the reader's verdict on the row (malformed, repaired) comes first
        notes, table = table.column(ROW_NOTE).to_pylist(), table.drop_columns([ROW_NOTE])
    t1, t2 = _texts(table, "text_1"), _texts(table, "text_2")
    text_status = [note or _text_status(a, b) for note, a, b in zip(notes, t1, t2, strict=True)]
    images, statuses = [], {"text_status": text_status}
    mask = np.zeros((n, 2), np.float32)
    refs = {c: table.column(c).to_pylist() if c in table.column_names else [None] * n for c in IMAGE_COLUMNS}
    # Each distinct reference is fetched and decoded once per chunk, however often it repeats.
    distinct = list(dict.fromkeys(image_reference(r) for column in refs.values() for r in column))
    loaded = load_images(distinct, fetcher, pool, size)
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
    return PreparedChunk(table, as_text[0], as_text[1], images, mask, statuses, features, length_order(*as_text))


def length_order(text_1: np.ndarray, text_2: np.ndarray) -> np.ndarray:
    """Rows ordered by their longer text (stable): a batch of similar lengths is trimmed to little padding.

    Each batch runs at its longest row's length, so in file order about half of the token slots were padding
    on real tweets. Characters stand in for tokens; only the order depends on it, never the result.
    """
    longest = np.fromiter((max(len(a), len(b)) for a, b in zip(text_1, text_2, strict=True)), np.int64, len(text_1))
    return np.argsort(longest, kind="stable")


def scored_table(chunk: PreparedChunk, probs: np.ndarray) -> pa.Table:
    """The input chunk with the contract's output columns appended."""
    table = chunk.table
    for name in OUTPUT_COLUMNS:  # re-scoring a scored file replaces its old predictions
        if name in table.column_names:
            table = table.drop_columns([name])
    table = table.append_column("pred_label", pa.array([LABELS[i] for i in probs.argmax(1)], pa.string()))
    for i, name in enumerate(PROB_COLUMNS):
        table = table.append_column(name, pa.array(probs[:, i], pa.float32()))
    for name in STATUS_COLUMNS:
        table = table.append_column(name, pa.array(chunk.statuses[name], pa.string()))
    return table


def output_schema(input_schema: pa.Schema) -> pa.Schema:
    fields = [f for f in input_schema if f.name not in OUTPUT_COLUMNS]
    fields.append(pa.field("pred_label", pa.string()))
    fields += [pa.field(name, pa.float32()) for name in PROB_COLUMNS]
    fields += [pa.field(name, pa.string()) for name in STATUS_COLUMNS]
    return pa.schema(fields)


def _limited(chunks: Iterator[pa.Table], remaining: int | None) -> Iterator[pa.Table]:
    for table in chunks:
        if remaining is not None:
            if remaining <= 0:
                return
            table = table.slice(0, remaining)
            remaining -= table.num_rows
        yield table


def _prepared_ahead(tables: Iterator[pa.Table], prepare: Callable[[pa.Table], PreparedChunk]):
    """Prepare the next chunk in the background while the current one is being scored."""
    with ThreadPoolExecutor(1, thread_name_prefix="mmscore-prepare") as ahead:
        pending: deque = deque()
        for table in tables:
            pending.append(ahead.submit(prepare, table))
            if len(pending) > 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def run_key(source: PairsSource, predictor: Predictor, options: ScoreOptions) -> dict:
    """What must match for ``--resume`` to continue an earlier run's parts."""
    path = Path(source.path)
    stat = path.stat() if path.is_file() else None
    return {
        "input": str(path.resolve()) if stat else source.path,
        "input_size": stat.st_size if stat else None,
        "input_mtime_ns": stat.st_mtime_ns if stat else None,
        "model": predictor.card.model_id(),
        "offsets": [float(x) for x in predictor.offsets],
        "temperature": predictor.temperature,
        "chunk_rows": options.chunk_rows,
        "limit": options.limit,
        "mmscore": mmscore.__version__,
    }


def score_pairs(
    source: PairsSource,
    output: Path,
    predictor: Predictor,
    fetcher: ImageFetcher,
    options: ScoreOptions = ScoreOptions(),
    on_progress: Callable[[int, Counter], None] | None = None,
) -> RunSummary:
    """Score every row of ``source`` into ``output`` (Parquet). One output row per input row, same order."""
    import tensorflow as tf

    if options.resume and source.path == "<stdin>":
        raise InputError("--resume needs an input file, not stdin")
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    writer = ScoredWriter(output, run_key(source, predictor, options), resume=options.resume)
    summary = RunSummary(rows=writer.rows_done, resumed_rows=writer.rows_done)
    limit = None if options.limit is None else max(0, options.limit - writer.rows_done)
    size = predictor.image_encoder.image_size
    text_encoder = predictor.text_encoder
    step = predictor.scoring_step
    chunks_in_flight: queue.Queue[PreparedChunk] = queue.Queue()

    with ThreadPoolExecutor(options.fetch_workers, thread_name_prefix="mmscore-fetch") as pool:
        tables = _limited(source.chunks(options.chunk_rows, skip=writer.rows_done), limit)
        prepared = _prepared_ahead(tables, lambda t: prepare_chunk(t, fetcher, pool, size, predictor.pair_features))

        failures: list[BaseException] = []  # what really went wrong inside tf.data's generator thread

        def batches():
            try:
                yield from _batches()
            except Exception as exc:
                failures.append(exc)
                raise

        def _batches():
            for chunk in prepared:
                chunks_in_flight.put(chunk)
                for lo in range(0, chunk.table.num_rows, options.batch_size):
                    rows = chunk.order[lo : lo + options.batch_size]
                    yield {
                        "text_1": chunk.text_1[rows],
                        "text_2": chunk.text_2[rows],
                        "image_1": chunk.images[0][rows],
                        "image_2": chunk.images[1][rows],
                        "image_mask": chunk.image_mask[rows],
                        "pair_features": chunk.pair_features[rows],
                    }

        signature = {
            "text_1": tf.TensorSpec([None], tf.string),
            "text_2": tf.TensorSpec([None], tf.string),
            "image_1": tf.TensorSpec([None, size, size, 3], tf.uint8),
            "image_2": tf.TensorSpec([None, size, size, 3], tf.uint8),
            "image_mask": tf.TensorSpec([None, 2], tf.float32),
            "pair_features": tf.TensorSpec([None, predictor.pair_features([""], [""]).shape[1]], tf.float32),
        }

        def tokenise(batch):
            ids_1, mask_1 = text_encoder.tokenize(batch["text_1"])
            ids_2, mask_2 = text_encoder.tokenize(batch["text_2"])
            images = batch["image_1"], batch["image_2"], batch["image_mask"]
            return ids_1, mask_1, ids_2, mask_2, *images, batch["pair_features"]

        dataset = (
            tf.data.Dataset.from_generator(batches, output_signature=signature)
            .map(tokenise, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(2)
        )
        collected: list[np.ndarray] = []
        collected_rows = 0
        try:
            for inputs in dataset:
                probs = predictor.probabilities(step(*inputs).numpy())
                collected.append(probs)
                collected_rows += len(probs)
                while not chunks_in_flight.empty() and collected_rows >= chunks_in_flight.queue[0].table.num_rows:
                    chunk = chunks_in_flight.get()
                    all_probs = np.concatenate(collected)
                    n = chunk.table.num_rows
                    chunk_probs = chunk.in_input_order(all_probs[:n])
                    writer.write(scored_table(chunk, chunk_probs))
                    collected, collected_rows = [all_probs[n:]], len(all_probs) - n
                    _count(summary, chunk, chunk_probs)
                    if on_progress:
                        on_progress(n, summary.image_statuses)
        except tf.errors.OpError as exc:  # an error raised while preparing rows surfaces through tf.data
            cause = failures[0] if failures else None
            if isinstance(cause, InputError):
                raise cause from None  # the reader's own one-line message
            if cause is not None:
                raise ScoringError(f"{source.path}: preparing rows failed ({_one_line(cause)})") from cause
            raise ScoringError(f"{source.path}: the model step failed ({_one_line(exc)})") from exc
        # Chunks with zero rows never produce a batch: write them too, so the count stays exact.
        while not chunks_in_flight.empty():
            chunk = chunks_in_flight.get()
            writer.write(scored_table(chunk, np.zeros((0, len(LABELS)), np.float32)))

    summary.seconds = time.perf_counter() - started
    writer.finish(_facts(summary, source, predictor, options, started_at), output_schema(source.schema))
    return summary


def _count(summary: RunSummary, chunk: PreparedChunk, probs: np.ndarray) -> None:
    summary.rows += len(probs)
    summary.labels.update(LABELS[i] for i in probs.argmax(1))
    for column in IMAGE_COLUMNS:
        summary.image_statuses.update(chunk.statuses[f"{column}_status"])
    summary.text_statuses.update(chunk.statuses["text_status"])


def _facts(
    summary: RunSummary, source: PairsSource, predictor: Predictor, options: ScoreOptions, started_at: str
) -> dict:
    return {
        "mmscore_version": mmscore.__version__,
        "model_id": predictor.card.model_id(),
        "model_card": {k: getattr(predictor.card, k) for k in ("text_encoder", "image_encoder", "loss", "trained_at")},
        "decision_offsets": [float(x) for x in predictor.offsets],
        "temperature": predictor.temperature,
        "uses_images": predictor.card.uses_images,
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
        "batch_size": options.batch_size,
        "fetch_workers": options.fetch_workers,
    }
