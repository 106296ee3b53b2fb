"""The local engine: read -> prepare (fetch, decode, tokenise) -> score -> write, in this process.

One background thread prepares the next chunk while the model scores the current one; each scored chunk is
written as it finishes (whole parts: a crash costs at most one part's work, and ``--resume`` continues).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from mmscore.contract import (
    output_schema,
)
from mmscore.errors import InputError, ScoringError
from mmscore.images.fetcher import ImageFetcher
from mmscore.io.pairs_reader import PairsSource
from mmscore.io.scored_writer import ScoredOutput, ScoredWriter
from mmscore.model.predictor import Predictor
from mmscore.scoring.chunks import ChunkScorer
from mmscore.scoring.run import EngineJob, RunSummary, ScoreOptions, count_rows, run_facts, run_key


def _limited(chunks: Iterator[pa.Table], remaining: int | None) -> Iterator[pa.Table]:
    for table in chunks:
        if remaining is not None:
            if remaining <= 0:
                return
            table = table.slice(0, remaining)
            remaining -= table.num_rows
        yield table


def score_pairs(
    source: PairsSource,
    output: ScoredOutput | str | Path,
    predictor: Predictor,
    fetcher: ImageFetcher,
    options: ScoreOptions | None = None,
    on_progress: Callable[[int, Counter], None] | None = None,
) -> RunSummary:
    """Score every row of ``source`` into ``output`` (a Parquet file, or a folder of parts). One output row per
    input row, same order."""
    options = options or ScoreOptions()
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


def score(job: EngineJob, on_progress: Callable[[int, Counter], None] | None = None) -> RunSummary:
    """The engine entry point (see :mod:`mmscore.scoring`): this process, one fetcher for the run."""
    fetcher = job.images.fetcher(job.options.fetch_workers)
    try:
        return score_pairs(job.source, job.target, job.predictor, fetcher, job.options, on_progress)
    finally:
        fetcher.close()
