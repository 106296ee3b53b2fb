"""The Python API: load a model once, then score DataFrames, Arrow tables or files.

>>> from mmscore import Scorer
>>> scorer = Scorer()                                   # the shipped model; images under the current folder
>>> labelled = scorer.score_frame(pairs)                # same columns and statuses as `mmscore score`
>>> summary = scorer.score_file("pairs.parquet", "out.parquet")

The CLI's ``score`` command is a thin caller of :meth:`Scorer.score_file`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from mmscore import defaults
from mmscore.contract import output_schema
from mmscore.errors import InputError, ScoringError, first_line, require_folder
from mmscore.images.fetcher import ImageFetcher, ImageSource
from mmscore.io.pairs_reader import PairsSource, check_schema, default_image_root, open_pairs
from mmscore.io.scored_writer import ScoredOutput
from mmscore.precision import warn_if_emulated
from mmscore.scoring import ENGINES
from mmscore.scoring import engine as engine_module
from mmscore.scoring.chunks import ChunkScorer, chunk_slices
from mmscore.scoring.run import EngineJob, RunSummary, ScoreOptions


def scored_output(output: str | Path | None, output_dir: str | Path | None = None) -> ScoredOutput:
    """The output of a run: a .parquet file (``output``) or a folder of parts (``output_dir``), checked
    before any work starts (one-line :class:`InputError`)."""
    if (output is None) == (output_dir is None):
        raise InputError("give either an output file (-o OUT.parquet) or an output folder (--output-dir DIR)")
    target = ScoredOutput(str(output), folder=False) if output is not None else ScoredOutput(str(output_dir), True)
    target.check()
    return target


def check_engine(engine: str, address: str | None = None, actors: int | None = None) -> None:
    """A one-line :class:`InputError` for an unknown engine, Ray options without Ray, or Ray missing."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine == "local" and (address is not None or actors is not None):
        raise InputError("--address and --actors need --engine ray")
    if engine == "ray":
        engine_module("ray").require_ray()


@dataclass(frozen=True)
class ScoreRun:
    """A scoring run's input, output and engine, checked before any model loads (one-line errors)."""

    source: PairsSource
    target: ScoredOutput
    engine: str = defaults.ENGINE
    address: str | None = None
    actors: int | None = None

    @classmethod
    def check(
        cls,
        input: str | Path | PairsSource,
        output: str | Path | None = None,
        output_dir: str | Path | None = None,
        *,
        engine: str = defaults.ENGINE,
        address: str | None = None,
        actors: int | None = None,
    ) -> ScoreRun:
        """Open ``input`` (checking its type and columns), check the output and that it is apart from the
        input, and the engine; raise :class:`InputError` (or :class:`ScoringError` for a missing Ray)."""
        target = scored_output(output, output_dir)
        check_engine(engine, address, actors)
        source = input if isinstance(input, PairsSource) else open_pairs(input)
        target.check_apart(source.files)
        return cls(source, target, engine, address, actors)


class Scorer:
    """A loaded model and an image fetcher, reused for every call.

    ``model``: a model directory (default: the shipped model). ``image_root``: the folder local image paths
    are read from (default: the current folder; :meth:`score_file` uses the input file's folder when none is
    given). ``offline``: use only cached or local images. ``precision``: the text encoder's number format,
    ``auto`` (bfloat16 where the hardware does it natively, else float32), ``float32`` or ``bfloat16``.
    """

    def __init__(
        self,
        model: Path | str | None = None,
        *,
        image_cache: Path | None = None,
        image_root: Path | None = None,
        offline: bool = False,
        allow_private_urls: bool = False,
        batch_size: int = defaults.BATCH_SIZE,
        fetch_workers: int = defaults.FETCH_WORKERS,
        precision: str = defaults.PRECISION,
    ):
        from mmscore.model.predictor import Predictor
        from mmscore.tensorflow_runtime import import_tensorflow

        require_folder(image_root, "--image-root")
        import_tensorflow()
        try:
            self.predictor = Predictor.load(model, precision)
        except ValueError as exc:  # an unknown precision
            raise InputError(str(exc)) from exc
        warn_if_emulated(precision)
        self.model = None if model is None else str(Path(model).resolve())
        self.options = ScoreOptions(batch_size=batch_size, fetch_workers=fetch_workers)
        self.images = ImageSource(image_cache, None, offline, allow_private_urls)
        self.image_root = image_root

    def _fetcher(self, image_root: Path | None) -> ImageFetcher:
        root = image_root or self.image_root
        return replace(self.images, image_root=root).fetcher(self.options.fetch_workers)

    def score_arrow(self, table: pa.Table) -> pa.Table:
        """``table`` (``text_1``, ``text_2`` [, ``image_1``, ``image_2``, anything else]) with the output columns."""
        check_schema("table", table.schema)
        fetcher = self._fetcher(None)
        scorer = ChunkScorer(self.predictor, fetcher, self.options.batch_size)
        chunks = chunk_slices(table, self.options.chunk_rows)
        try:
            scored = list(scorer.score_stream(chunks, self.options.fetch_workers))
        finally:
            fetcher.close()
        return pa.concat_tables(scored) if scored else output_schema(table.schema).empty_table()

    def score_frame(self, frame):
        """A pandas DataFrame in, the same rows (same index) with the output columns appended out."""
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"DataFrame cannot become a table ({first_line(exc)})") from exc
        out = self.score_arrow(table).to_pandas()
        out.index = frame.index
        return out

    def score_file(
        self,
        input: str | Path | PairsSource,
        output: str | Path | None = None,
        *,
        output_dir: str | Path | None = None,
        limit: int | None = None,
        resume: bool = False,
        part_rows: int | None = None,
        on_start: Callable[[int | None], None] | None = None,
        on_progress: Callable[[int, Counter], None] | None = None,
        engine: str = defaults.ENGINE,
        address: str | None = None,
        actors: int | None = None,
    ) -> RunSummary:
        """Stream ``input`` into ``output`` (.parquet) or ``output_dir`` (a folder of ordered Parquet parts),
        resumable. ``input``: a .csv/.parquet file, a folder or glob of them, any of those as an object-store
        URI, "-" for CSV on stdin, or what :func:`~mmscore.io.pairs_reader.open_pairs` opened from any of
        those. Outputs may be object-store URIs too.

        ``part_rows``: rows per written part (a Ray shard), rounded up to whole chunks (``batch_size`` × 8
        rows); default one chunk (Ray: four). Bigger parts make fewer files in ``output_dir``; a crash then
        costs up to one part's work.

        ``on_start(rows)`` gets the number of rows to score (None when unknown, e.g. CSV); ``on_progress(rows,
        image_statuses)`` is called after each scored chunk. ``engine="ray"`` scores on a Ray cluster
        (:mod:`mmscore.scoring.ray_engine`; ``address``: the cluster to join, default a local Ray; ``actors``: model
        actors, default one per node or per GPU): the same output.
        """
        run = ScoreRun.check(input, output, output_dir, engine=engine, address=address, actors=actors)
        return self.run(
            run, limit=limit, resume=resume, part_rows=part_rows, on_start=on_start, on_progress=on_progress
        )

    def run(
        self,
        run: ScoreRun,
        *,
        limit: int | None = None,
        resume: bool = False,
        part_rows: int | None = None,
        on_start: Callable[[int | None], None] | None = None,
        on_progress: Callable[[int, Counter], None] | None = None,
    ) -> RunSummary:
        """:meth:`score_file` for a run already checked by :meth:`ScoreRun.check` (the CLI checks before it
        loads the model, so a wrong file or output fails in a second)."""
        source, target, engine = run.source, run.target, run.engine
        root = self.image_root or default_image_root(source.path)
        chunks = None if part_rows is None else max(1, math.ceil(part_rows / self.options.chunk_rows))
        options = replace(self.options, limit=limit, resume=resume, part_chunks=chunks)
        if on_start:
            total = source.num_rows
            on_start(total if limit is None or total is None else min(limit, total))
        images = replace(self.images, image_root=root)
        job = EngineJob(source, target, self.predictor, options, self.model, images, run.address, run.actors)
        return engine_module(engine).score(job, on_progress)


__all__ = ["Scorer", "ScoreRun", "RunSummary", "ScoringError"]
