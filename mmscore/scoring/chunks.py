"""One chunk of rows in, the same rows with the output columns out: fetch and decode images, tokenise
texts, order rows by length, run the model batch by batch, restore input order (:class:`ChunkScorer`).

Every engine scores with this: the local engine streams chunks through it, the Ray engine's actors call it
per shard, the Python API per table. Memory depends on the chunk size, never on the number of input rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mmscore import defaults, statuses
from mmscore.contract import (
    DOMAIN_SCORE,
    IN_DOMAIN,
    LABELLED_BY,
    MAIN_HEAD,
    OUTPUT_COLUMNS,
    PRED_LABEL,
    SECOND_HEAD,
    STATUS_COLUMNS,
    output_array,
)
from mmscore.encoders.pair_tokens import PairTokens
from mmscore.errors import MmscoreError, ScoringError, one_line
from mmscore.images.fetcher import ImageFetcher, image_reference
from mmscore.images.loading import load_images
from mmscore.io.pairs_reader import IMAGE_COLUMNS, ROW_NOTE
from mmscore.labels import LABELS, PROB_COLUMNS
from mmscore.lookahead import lookahead
from mmscore.model.predictor import Predictor
from mmscore.model.preprocessor import PairPreprocessor


@dataclass
class PreparedChunk:
    """One chunk ready for the model: tokens, decoded images, masks, lexical features, per-row statuses."""

    table: pa.Table
    # Per side, each row's (size, size, 3) uint8 pixels (one shared blank where there is no image). Batches are
    # stacked from these: a chunk-sized array per side cost a page fault per 4 KB it was first written to, about
    # 0.35 s per 1,000 images here, and each batch was copied out of it anyway.
    images: list[list[np.ndarray]]
    image_mask: np.ndarray  # (n, 2) float32, 1 where the image was decoded
    statuses: dict[str, list[str]]
    pair_features: np.ndarray  # (n, d) float32 lexical features of the texts; d = 0 when the model takes none
    order: np.ndarray  # the rows, shortest first: batches are cut in this order (see :func:`length_order`)
    tokens: PairTokens | None = None  # both texts tokenised (given a text encoder)
    texts: tuple[list, list] = ((), ())  # text_1 and text_2 as read (None for a missing cell)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def batch_rows(self, batch_size: int) -> Iterator[np.ndarray]:
        """Row indices of each model batch, cut from :attr:`order` so a batch holds texts of similar length."""
        for lo in range(0, self.num_rows, batch_size):
            yield self.order[lo : lo + batch_size]

    def image_batches(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both sides' pixels of ``rows``, each a (len(rows), size, size, 3) uint8 array."""
        first, second = ([side[row] for row in rows] for side in self.images)
        return np.stack(first), np.stack(second)

    def in_input_order(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities computed in :attr:`order`, put back in the chunk's input order."""
        restored = np.empty_like(probs)
        restored[self.order] = probs
        return restored


def _texts(table: pa.Table, column: str) -> list[str | None]:
    return table.column(column).cast(pa.string()).to_pylist()


def _text_status(a: str | None, b: str | None) -> str:
    empty = [name for name, t in (("text_1", a), ("text_2", b)) if t is None or not t.strip()]
    return statuses.TEXT_OK if not empty else statuses.empty_texts(empty)


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
    fetcher: ImageFetcher | None,
    pool: ThreadPoolExecutor | None,
    size: int,
    preprocessor: PairPreprocessor | None = None,
    loaded: dict | None = None,
) -> PreparedChunk:
    """Texts, decoded images, masks, per-row statuses, and (given the model's ``preprocessor``) lexical
    features and tokens, for one chunk. With tokens, rows are ordered by token count; otherwise by characters.
    ``loaded``: the chunk's images already fetched and decoded (:func:`load_images` of its image references);
    ``fetcher`` and ``pool`` fetch them when it is None."""
    n = table.num_rows
    notes = [None] * n
    if ROW_NOTE in table.column_names:  # the reader's verdict on the row (malformed, repaired) comes first
        notes, table = table.column(ROW_NOTE).to_pylist(), table.drop_columns([ROW_NOTE])
    t1, t2 = _texts(table, "text_1"), _texts(table, "text_2")
    text_status = [note or _text_status(a, b) for note, a, b in zip(notes, t1, t2, strict=True)]
    images, row_statuses = [], {"text_status": text_status}
    mask = np.zeros((n, 2), np.float32)
    refs = image_cells(table)
    if loaded is None:  # each distinct reference is fetched and decoded once per chunk, however often it repeats
        if fetcher is None or pool is None:
            raise ValueError("prepare_chunk needs a fetcher and a pool, or the chunk's images already loaded")
        loaded = load_images(chunk_image_refs(refs), fetcher, pool, size)
    blank = np.zeros((size, size, 3), np.uint8)
    blank.flags.writeable = False  # shared by every row without an image
    for side, column in enumerate(IMAGE_COLUMNS):
        results = [loaded[image_reference(r)] for r in refs[column]]
        mask[:, side] = [array is not None for array, _status in results]
        images.append([blank if array is None else array for array, _status in results])
        row_statuses[f"{column}_status"] = [status for _array, status in results]
    as_text = [np.array(["" if t is None else t for t in col], dtype=object) for col in (t1, t2)]
    features = (preprocessor or PairPreprocessor()).pair_features(*as_text)
    tokens = preprocessor.tokens(*as_text) if preprocessor is not None and n else None
    # Stable, so rows of equal length keep their input order.
    order = np.argsort(tokens.longest_per_row(), kind="stable") if tokens else length_order(*as_text)
    return PreparedChunk(table, images, mask, row_statuses, features, order, tokens, (t1, t2))


def length_order(text_1: np.ndarray, text_2: np.ndarray) -> np.ndarray:
    """Rows ordered by their longer text (stable): a batch of similar lengths is trimmed to little padding.

    Each batch runs at its longest row's length, so in file order about half of the token slots were padding
    on real tweets. Characters stand in for tokens when the chunk is not tokenised; only the order depends on
    it, never the result.
    """
    longest = np.fromiter((max(len(a), len(b)) for a, b in zip(text_1, text_2, strict=True)), np.int64, len(text_1))
    return np.argsort(longest, kind="stable")


def scored_table(
    chunk: PreparedChunk,
    probs: np.ndarray,
    domain: tuple[np.ndarray, np.ndarray] | None = None,
    taken: np.ndarray | None = None,
) -> pa.Table:
    """The input chunk with the contract's output columns appended (``domain``: the in-domain score and flag
    per row, null without a reference; ``taken``: the rows the model's second head labelled)."""
    table = chunk.table
    for name in OUTPUT_COLUMNS:  # re-scoring a scored file replaces its old predictions
        if name in table.column_names:
            table = table.drop_columns([name])
    n = table.num_rows
    score, flag = domain if domain is not None else ([None] * n, [None] * n)
    taken = np.zeros(n, bool) if taken is None else taken
    columns = {PRED_LABEL: [LABELS[i] for i in probs.argmax(1)], DOMAIN_SCORE: score, IN_DOMAIN: flag}
    columns[LABELLED_BY] = np.where(taken, SECOND_HEAD, MAIN_HEAD).tolist()
    columns.update({name: probs[:, i] for i, name in enumerate(PROB_COLUMNS)})
    columns.update({name: chunk.statuses[name] for name in STATUS_COLUMNS})
    for name in OUTPUT_COLUMNS:
        table = table.append_column(name, output_array(name, columns[name]))
    return table


class ChunkScorer:
    """The per-chunk seam: an input table -> the same rows, in the same order, with the output columns added.

    ``prepare`` fetches, decodes and tokenises (threads, no model); ``score`` runs the model on a prepared
    chunk, batch by batch in length order. The local driver and distributed engines call these two alone.
    ``fetcher`` is None where another stage fetches and decodes (then ``prepare`` is given each chunk's images).
    """

    def __init__(
        self,
        predictor: Predictor,
        fetcher: ImageFetcher | None,
        batch_size: int = defaults.BATCH_SIZE,
        length_batches: bool = True,
    ):
        self.predictor = predictor
        self.fetcher = fetcher
        self.batch_size = batch_size
        self.length_batches = length_batches

    def prepare(self, table: pa.Table, pool: ThreadPoolExecutor | None, loaded: dict | None = None) -> PreparedChunk:
        """``loaded``: the chunk's images when another stage fetched and decoded them (then no fetching here)."""
        predictor = self.predictor
        size = predictor.image_encoder.image_size
        try:
            chunk = prepare_chunk(table, self.fetcher, pool, size, predictor.preprocessor, loaded)
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
                images = chunk.image_batches(rows)
                logits, vectors_1, vectors_2 = step(
                    *chunk.tokens.rows(rows), *images, chunk.image_mask[rows], chunk.pair_features[rows]
                )
                parts.append(self.predictor.probabilities(logits.numpy()))
                vectors[0].append(vectors_1.numpy())
                vectors[1].append(vectors_2.numpy())
        except tf.errors.OpError as exc:
            raise ScoringError(f"the model step failed ({one_line(exc)})") from exc
        probs = chunk.in_input_order(np.concatenate(parts)) if parts else np.zeros((0, len(LABELS)), np.float32)
        reference = self.predictor.domain
        if reference is None or not parts:
            return scored_table(chunk, probs)
        vectors = [chunk.in_input_order(np.concatenate(v)) for v in vectors]
        domain = reference.score(*vectors, *chunk.texts)
        probs, taken = self.predictor.judge_with_second_head(probs, domain, *vectors, *chunk.texts)
        return scored_table(chunk, probs, domain, taken)

    def score_table(self, table: pa.Table, pool: ThreadPoolExecutor) -> pa.Table:
        return self.score(self.prepare(table, pool))

    def score_stream(self, tables: Iterable[pa.Table], fetch_workers: int) -> Iterator[pa.Table]:
        """Each table scored, in order, the next one prepared in the background while the current one is scored."""
        with ThreadPoolExecutor(fetch_workers, thread_name_prefix="mmscore-fetch") as pool:
            for chunk in lookahead(tables, lambda table: self.prepare(table, pool), 1, "mmscore-prepare"):
                yield self.score(chunk)
