"""What one scoring run is and what it reports: its options, its tallies (:class:`RunSummary`), the key a
``--resume`` must match, and the run facts written beside the output. Shared by every engine."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from mmscore import defaults
from mmscore.contract import (
    DOMAIN_NAMES,
    IN_DOMAIN,
    LABELLED_BY,
    SECOND_HEAD,
)
from mmscore.images.fetcher import ImageSource
from mmscore.io.pairs_reader import IMAGE_COLUMNS, PairsSource
from mmscore.io.scored_writer import ScoredOutput
from mmscore.model.predictor import Predictor
from mmscore.version import __version__


@dataclass(frozen=True)
class ScoreOptions:
    batch_size: int = defaults.BATCH_SIZE
    chunk_batches: int = defaults.CHUNK_BATCHES  # rows per written chunk = batch_size * chunk_batches
    fetch_workers: int = defaults.FETCH_WORKERS
    limit: int | None = None
    resume: bool = False
    length_batches: bool = True  # cut batches from rows sorted by length (False: in file order)
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
        "mmscore": __version__,
    }


def count_rows(summary: RunSummary, scored: pa.Table) -> None:
    summary.rows += scored.num_rows
    summary.labels.update(scored.column("pred_label").to_pylist())
    for column in IMAGE_COLUMNS:
        summary.image_statuses.update(scored.column(f"{column}_status").to_pylist())
    summary.text_statuses.update(scored.column("text_status").to_pylist())
    summary.domain.update(DOMAIN_NAMES[flag] for flag in scored.column(IN_DOMAIN).to_pylist())
    summary.domain[SECOND_HEAD] += scored.column(LABELLED_BY).to_pylist().count(SECOND_HEAD)


def run_facts(
    summary: RunSummary, source: PairsSource, predictor: Predictor, options: ScoreOptions, started_at: str
) -> dict:
    return {
        "mmscore_version": __version__,
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


@dataclass(frozen=True)
class EngineJob:
    """Everything an engine needs for one run, checked and typed (see :mod:`mmscore.scoring`)."""

    source: PairsSource
    target: ScoredOutput
    predictor: Predictor
    options: ScoreOptions
    model: str | None  # the model directory (None: the shipped one), for engines that load it again elsewhere
    images: ImageSource  # where images come from and what may be fetched
    address: str | None = None  # a cluster to join (engines that have one)
    actors: int | None = None  # model workers (engines that have them); None: the engine's default
