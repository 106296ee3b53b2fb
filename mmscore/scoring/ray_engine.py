"""``mmscore score --engine ray``: the local engine's per-chunk scorer on a Ray cluster, through Ray Data.

The driver plans **shards** — global row ranges, each a whole number of chunks — from the Parquet footers,
skips shards whose part already exists (``--resume``), and lets Ray Data stream the rest through two
stages, sized apart: CPU tasks (:func:`fetch_shards`, no TensorFlow) read exactly a shard's rows (only the
row groups that hold them) and fetch and decode its images chunk by chunk; a pool of model actors
(:class:`ShardScorer`, ``num_gpus=1`` where there are GPUs) loads the model once and scores each fetched
shard chunk by chunk with :class:`mmscore.scoring.chunks.ChunkScorer` — the same chunks, the same code as the
local engine, hence the same bytes — and writes its own fixed-name part whole (a temp file and a rename on
disk, one upload on an object store). The driver then assembles the parts in shard order into OUTPUT, or
with ``--output-dir`` keeps them as the output. Ray is trusted with neither order nor
writing: it may run a shard twice (a retried task, a restarted actor); the second run replaces the same part.

The parts folder (``OUTPUT.parts``, or the ``--output-dir`` folder itself) must be visible to every node: on a
multi-node cluster, OUTPUT is an object-store URI (``s3://…``; each node's ``AWS_*`` variables give access)
or lives on shared storage (NFS, a mounted volume).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from mmscore import defaults
from mmscore.contract import output_schema
from mmscore.errors import InputError, ScoringError
from mmscore.images.fetcher import ImageSource
from mmscore.images.loading import load_images
from mmscore.io.pairs_reader import InputFile, PairsSource, read_row_range
from mmscore.io.scored_writer import ScoredWriter, write_part
from mmscore.io.storage import Storage
from mmscore.scoring.chunks import ChunkScorer, chunk_image_refs, chunk_slices, image_cells
from mmscore.scoring.run import EngineJob, RunSummary, ScoreOptions, count_rows, run_facts, run_key

RAY_MISSING = "--engine ray needs Ray, which is not installed: pip install 'mmscore[ray]'"
SHARD_CHUNKS = defaults.RAY_SHARD_CHUNKS
ACTOR_CPU_SHARE = 0.9  # of a node's CPUs: an actor pool that asks for all of them never starts


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # global row offset in the input read as one table
    rows: int


def plan_shards(total_rows: int, shard_rows: int) -> list[Shard]:
    """Consecutive row ranges of ``shard_rows`` rows (the last may be shorter) covering ``total_rows``."""
    return [
        Shard(i, start, min(shard_rows, total_rows - start)) for i, start in enumerate(range(0, total_rows, shard_rows))
    ]


@dataclass(frozen=True)
class ShardJob:
    """Everything an actor needs, picklable: where the rows are, how to score them, where the part goes."""

    files: list[tuple[InputFile, int]]  # Parquet files in reading order, each with its row count
    input_schema: pa.Schema
    parts: str  # the parts folder: a local path or a URI, opened on each node with that node's credentials
    model: str | None
    precision: str
    image_size: int  # pixels the model's image encoder takes (from the card)
    images: ImageSource  # the run's, unchanged: where images come from and what may be fetched
    options: ScoreOptions  # the run's, unchanged: batch size, chunk rows, fetch workers


FETCH_TASK_CPUS = 0.1  # fetching waits on the network; decoding is a small share of a core per shard


def fetch_shards(batch: dict, job: ShardJob) -> dict:
    """Stage one (CPU tasks, no TensorFlow): each shard's rows, and its images fetched and decoded chunk by
    chunk — the same chunks, the same fetcher calls as the local engine, so the same pixels and statuses."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    out: dict[str, list] = {"index": [], "table": [], "images": []}
    fetcher = job.images.fetcher(job.options.fetch_workers)
    try:
        with ThreadPoolExecutor(job.options.fetch_workers, thread_name_prefix="mmscore-fetch") as pool:
            for index, start, rows in zip(batch["index"], batch["start"], batch["rows"], strict=True):
                table = read_row_range(job.files, int(start), int(rows), job.input_schema)
                chunks = chunk_slices(table, job.options.chunk_rows)
                loaded = [load_images(chunk_image_refs(image_cells(c)), fetcher, pool, job.image_size) for c in chunks]
                out["index"].append(int(index))
                out["table"].append(_ipc_bytes(table))
                out["images"].append(pickle.dumps(loaded, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        fetcher.close()
    return out


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class ShardScorer:
    """Stage two, a Ray Data actor: loads the model once, then scores fetched shards into their parts."""

    def __init__(self, job: ShardJob):
        _set_tensorflow_threads()
        from mmscore.model.predictor import Predictor

        self.job = job
        predictor = Predictor.load(job.model, job.precision)
        self.chunks = ChunkScorer(predictor, None, job.options.batch_size)  # images arrive fetched and decoded
        self.schema = output_schema(job.input_schema)

    def __call__(self, batch: dict) -> dict:
        import pickle

        done: dict[str, list] = {"index": [], "counts": []}
        for index, table_bytes, images in zip(batch["index"], batch["table"], batch["images"], strict=True):
            table = pa.ipc.open_stream(table_bytes).read_all()
            loaded = pickle.loads(images)  # produced by fetch_shards in this job: trusted
            chunks = chunk_slices(table, self.job.options.chunk_rows)
            prepared = (self.chunks.prepare(chunk, None, images) for chunk, images in zip(chunks, loaded, strict=True))
            scored = pa.concat_tables([self.chunks.score(chunk) for chunk in prepared]).cast(self.schema)
            write_part(Storage.at(self.job.parts).child(ScoredWriter.part_name(int(index))), scored)
            summary = RunSummary()
            count_rows(summary, scored)
            done["index"].append(int(index))
            done["counts"].append(json.dumps(summary.counts()))
        return done


def _set_tensorflow_threads() -> None:
    """Inside an actor: the local engine's intra-op thread count on this machine, one inter-op thread.

    Matrix products split their sums by thread, so another count would change the last bits of some
    probabilities: the same count as a local run on this node is what makes the output bit-identical. One
    inter-op pool thread instead of one per core: the scoring step is a single chain of large ops.
    """
    from mmscore.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(len(os.sched_getaffinity(0)))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process (an actor reused by Ray): keep what it has
        pass


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ScoringError(RAY_MISSING) from exc
    return ray


def connect(ray, address: str | None) -> None:
    """Join ``address``, or start a local Ray bound to loopback only, without its dashboard."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # mmscore reports progress itself
    if address:
        ray.init(address=address, **quiet)
    else:
        # "local": a new Ray on this machine, never one found lying around; bound to loopback only
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, **quiet)
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def actor_resources(ray, requested: int | None) -> tuple[int, dict]:
    """``(actors, Ray resources per actor)`` that this cluster can start: one actor per node by default (one
    per GPU where there are GPUs), each asking for 90 % of a node's CPUs; more actors per node share them."""
    nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    if not nodes:
        raise ScoringError("the Ray cluster has no node with CPUs")
    gpus = int(sum(n["Resources"].get("GPU", 0) for n in nodes))
    node_cpus = min(n["Resources"]["CPU"] for n in nodes)
    if gpus:
        return min(requested or gpus, gpus), {"num_gpus": 1, "num_cpus": min(1.0, node_cpus / 2)}
    actors = requested or len(nodes)
    per_node = math.ceil(actors / len(nodes))
    return actors, {"num_cpus": max(0.01, math.floor(100 * ACTOR_CPU_SHARE * node_cpus / per_node) / 100)}


def parquet_layout(source: PairsSource) -> list[tuple[InputFile, int]]:
    """Each input file with its row count (read from the footers when the input was opened)."""
    if source.file_rows is None:
        raise InputError(
            f"{source.path}: --engine ray reads Parquet (it plans shards from the files' footers); "
            "convert the CSV to Parquet or use the local engine"
        )
    return list(zip(source.files, source.file_rows, strict=True))


def score(job: EngineJob, on_progress: Callable[[int, Counter], None] | None = None) -> RunSummary:
    """The engine entry point (see :mod:`mmscore.scoring`): the run's shards on a Ray cluster (``job.address``;
    None starts a local Ray) with ``job.actors`` model actors (None: one per node, or per GPU). Same rows, order,
    values and schema as the local engine; actors load ``job.model`` and build their fetchers from ``job.images``."""
    ray = require_ray()
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    source, options, predictor = job.source, job.options, job.predictor
    files = parquet_layout(source)
    total = sum(rows for _f, rows in files)
    total = total if options.limit is None else min(total, options.limit)
    shard_rows = options.chunk_rows * (options.part_chunks or SHARD_CHUNKS)
    key = {**run_key(source, predictor, options), "engine": "ray", "shard_rows": shard_rows}
    writer = ScoredWriter(job.target, key, resume=options.resume)
    shards = plan_shards(total, shard_rows)
    done = writer.finished_parts() & {s.index for s in shards}
    pending = [s for s in shards if s.index not in done]
    summary = RunSummary(precision=predictor.precision)
    summary.rows = summary.resumed_rows = sum(s.rows for s in shards if s.index in done)
    if pending:
        connect(ray, job.address)
        actors, resources = actor_resources(ray, job.actors)
        shard_job = ShardJob(files, source.schema, writer.parts.name, job.model, predictor.precision,
                             predictor.card.image_size, job.images, options)  # fmt: skip
        rows_of = {s.index: s.rows for s in pending}
        for finished in _run_shards(ray, pending, shard_job, actors, resources):
            rows = rows_of[finished["index"]]
            summary.add_counts(rows, json.loads(finished["counts"]))
            if on_progress:
                on_progress(rows, summary.image_statuses)
    summary.seconds = time.perf_counter() - started
    facts = run_facts(summary, source, predictor, options, started_at)
    facts.update(engine="ray", shards=len(shards), part_rows=shard_rows)
    writer.finish(facts, output_schema(source.schema), part_count=len(shards))
    return summary


def _run_shards(ray, pending: list[Shard], job: ShardJob, actors: int, resources: dict):
    """Yield each shard's result row as its part is written (in completion order)."""
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    items = [{"index": s.index, "start": s.start, "rows": s.rows} for s in pending]
    fetched = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        fetch_shards, fn_kwargs={"job": job}, batch_size=1, num_cpus=FETCH_TASK_CPUS
    )
    scored = fetched.map_batches(
        ShardScorer,
        fn_constructor_args=(job,),
        batch_size=1,
        compute=ActorPoolStrategy(size=min(actors, len(items))),
        **resources,
    )
    yield from scored.iter_rows()
