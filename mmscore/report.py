"""Summarise the output of ``mmscore score`` (a Parquet file or a folder of parts, local or a URI):
distributions, statuses, and metrics vs gold labels.

Reads only the columns it needs, in chunks: memory holds counters plus one byte per row for gold and
predicted label codes (for scikit-learn's metrics), never the file itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmscore import defaults
from mmscore.contract import (
    DOMAIN_SCORE,
    IMAGE_STATUS_COLUMNS,
    IN_DOMAIN,
    LABELLED_BY,
    PRED_LABEL,
    SECOND_HEAD,
    TEXT_STATUS,
)
from mmscore.errors import InputError, OutputError, first_line
from mmscore.io.scored_writer import read_run_facts, scored_parts
from mmscore.io.storage import Storage
from mmscore.labels import LABEL_INDEX, LABELS, PROB_COLUMNS
from mmscore.metrics import CalibrationTally, class_metrics

LOW_CONFIDENCE = defaults.LOW_CONFIDENCE
CONFIDENCE_BINS = np.linspace(1 / 3, 1.0, 11)
NEEDED = (PRED_LABEL, *PROB_COLUMNS)
OUT_OF_DOMAIN_WARNING_SHARE = 0.2  # above this share of out-of-domain rows, the report warns in plain words


@dataclass
class DomainTally:
    """Rows in and out of the model's domain (``in_domain``), their labels and confidence; unknown: no reference."""

    labels: dict[str, Counter] = field(default_factory=lambda: {"in": Counter(), "out": Counter()})
    confidence_sum: dict[str, float] = field(default_factory=lambda: {"in": 0.0, "out": 0.0})
    unknown: int = 0
    second_head: int = 0  # rows the model's second head labelled (files scored before it: 0)
    second_head_out: int = 0  # of them, rows out of the main head's domain

    def add(self, flags: list, pred: np.ndarray, top: np.ndarray, labelled_by: list | None = None) -> None:
        by_second = np.array([b == SECOND_HEAD for b in labelled_by or [None] * len(flags)], bool)
        self.second_head += int(by_second.sum())
        self.second_head_out += int((by_second & np.array([f is False for f in flags], bool)).sum())
        for side, wanted in (("in", True), ("out", False)):
            chosen = np.array([f is wanted for f in flags], bool)
            self.labels[side].update(pred[chosen].tolist())
            self.confidence_sum[side] += float(top[chosen].sum())
        self.unknown += sum(f is None for f in flags)

    def rows(self, side: str) -> int:
        return sum(self.labels[side].values())

    @property
    def out_share(self) -> float:
        known = self.rows("in") + self.rows("out")
        return self.rows("out") / known if known else 0.0

    @property
    def warns(self) -> bool:
        return self.out_share > OUT_OF_DOMAIN_WARNING_SHARE

    def to_json(self) -> dict:
        sides = {}
        for side in ("in", "out"):
            n = self.rows(side)
            sides[side] = {
                "rows": n,
                "predicted_counts": {k: self.labels[side].get(k, 0) for k in LABELS},
                "mean_confidence": self.confidence_sum[side] / n if n else None,
            }
        return {
            "in_domain": sides["in"],
            "out_of_domain": sides["out"],
            "unknown_rows": self.unknown,
            "labelled_by_second_head": self.second_head,
            "out_of_domain_labelled_by_second_head": self.second_head_out,
            "out_of_domain_share": self.out_share,
            "warning": self.warns,
        }


@dataclass
class ScoredReport:
    path: str
    rows: int = 0
    predicted: Counter = field(default_factory=Counter)
    confidence_hist: dict[str, list[int]] = field(default_factory=lambda: {k: [0] * 10 for k in LABELS})
    confidence_quantiles: dict[str, dict[str, float]] = field(default_factory=dict)
    image_statuses: dict[str, Counter] = field(default_factory=dict)
    text_statuses: Counter = field(default_factory=Counter)
    low_confidence: int = 0
    low_confidence_threshold: float = LOW_CONFIDENCE
    run_facts: dict = field(default_factory=dict)
    gold_column: str | None = None
    gold_missing_reason: str | None = None
    gold_outside_labels: Counter = field(default_factory=Counter)
    metrics: dict | None = None
    calibration: dict | None = None  # ECE, log-loss, Brier and reliability bins against the gold labels
    domain: DomainTally | None = None  # None: the file has no in_domain column (scored by an older mmscore)

    def to_json(self) -> dict:
        """Stable, documented keys (see README, `mmscore report --json`)."""
        return {
            "file": self.path,
            "rows": self.rows,
            "predicted_counts": {k: self.predicted.get(k, 0) for k in LABELS},
            "predicted_share": {k: self.predicted.get(k, 0) / max(self.rows, 1) for k in LABELS},
            "confidence_bins": [round(float(b), 4) for b in CONFIDENCE_BINS],
            "confidence_histogram": self.confidence_hist,
            "confidence_quantiles": self.confidence_quantiles,
            "low_confidence_threshold": self.low_confidence_threshold,
            "low_confidence_rows": self.low_confidence,
            "image_status_counts": {k: dict(v) for k, v in self.image_statuses.items()},
            "text_status_counts": dict(self.text_statuses),
            "run": self.run_facts,
            "gold_column": self.gold_column,
            "gold_missing_reason": self.gold_missing_reason,
            "gold_outside_labels": dict(self.gold_outside_labels),
            "metrics": self.metrics,
            "calibration": self.calibration,
            "domain": self.domain.to_json() if self.domain else None,
        }


def _scored_schema(path: str, parts: list[Storage]) -> pa.Schema:
    """The schema of an output of `mmscore score`, or a one-line :class:`InputError`."""
    try:
        with parts[0].open() as f:
            schema = pq.read_schema(f)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{parts[0].name}: not a readable Parquet file") from exc
    missing = [c for c in NEEDED if c not in schema.names]
    if missing:
        raise InputError(f"{path}: not written by `mmscore score` (missing {', '.join(missing)})")
    return schema


def _batches(parts: list[Storage], columns: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The output's rows in order, ``columns`` only, at most ``chunk_rows`` at a time."""
    for part in parts:
        try:
            with part.open() as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=chunk_rows, columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{part.name}: not a readable Parquet file ({first_line(exc)})") from exc


def build_report(
    path: Path | str, gold: str = "label", chunk_rows: int = 65536, low_confidence: float = LOW_CONFIDENCE
) -> ScoredReport:
    """Stream the scored file once and compute everything the report shows."""
    path = str(path)
    parts = scored_parts(path)
    names = _scored_schema(path, parts).names
    report = ScoredReport(path, run_facts=read_run_facts(path), low_confidence_threshold=low_confidence)
    tally = CalibrationTally()
    has_gold = gold in names
    report.gold_column = gold if has_gold else None
    if not has_gold:
        report.gold_missing_reason = f"no gold column {gold!r} in the file (use --gold COLUMN)"
    statuses = [c for c in IMAGE_STATUS_COLUMNS if c in names]
    texts = [TEXT_STATUS] if TEXT_STATUS in names else []
    report.image_statuses = {c: Counter() for c in statuses}
    report.domain = DomainTally() if IN_DOMAIN in names else None
    domain = [c for c in (IN_DOMAIN, LABELLED_BY) if c in names]
    columns = [*NEEDED, *statuses, *texts, *domain, *([gold] if has_gold else [])]
    confidences: dict[str, list[np.ndarray]] = {k: [] for k in LABELS}
    gold_codes: list[np.ndarray] = []
    pred_codes: list[np.ndarray] = []
    for batch in _batches(parts, columns, chunk_rows):
        pred = np.array(batch.column("pred_label").to_pylist(), dtype=object)
        probs = np.stack([batch.column(c).to_numpy(zero_copy_only=False) for c in PROB_COLUMNS], 1)
        top = probs.max(1)
        report.rows += batch.num_rows
        report.predicted.update(pred.tolist())
        report.low_confidence += int((top < low_confidence).sum())
        _add_confidences(report, pred, top, confidences)
        for c in statuses:
            report.image_statuses[c].update(batch.column(c).to_pylist())
        if texts:
            report.text_statuses.update(batch.column(TEXT_STATUS).to_pylist())
        if report.domain:
            by = batch.column(LABELLED_BY).to_pylist() if LABELLED_BY in names else None
            report.domain.add(batch.column(IN_DOMAIN).to_pylist(), pred, top, by)
        if has_gold:
            gold_codes.append(_add_gold(report, batch.column(gold).to_pylist(), probs, pred, tally, pred_codes))
    _confidence_quantiles(report, confidences)
    if has_gold:
        _gold_figures(report, gold, gold_codes, pred_codes, tally)
    return report


def _add_confidences(report: ScoredReport, pred: np.ndarray, top: np.ndarray, confidences: dict) -> None:
    """A batch's top probabilities into each predicted label's histogram and kept values."""
    for label in LABELS:
        chosen = top[pred == label]
        counts, _ = np.histogram(chosen, CONFIDENCE_BINS)
        report.confidence_hist[label] = [a + int(b) for a, b in zip(report.confidence_hist[label], counts, strict=True)]
        # a reservoir would do for huge files; a float16 per row is small enough here
        confidences[label].append(chosen.astype(np.float16))


def _add_gold(report: ScoredReport, cells: list, probs, pred, tally: CalibrationTally, pred_codes: list) -> np.ndarray:
    """A batch's gold labels: values outside the labels are counted apart; the rest are tallied for calibration
    and returned as codes (their predictions' codes go to ``pred_codes``)."""
    g = ["" if v is None else str(v) for v in cells]
    known = np.array([v in LABEL_INDEX for v in g])
    report.gold_outside_labels.update(v for v, k in zip(g, known, strict=True) if not k)
    codes = np.array([LABEL_INDEX[v] for v, k in zip(g, known, strict=True) if k], np.int8)
    tally.add(probs[known], codes)
    pred_codes.append(np.array([LABEL_INDEX.get(p, -1) for p in pred[known]], np.int8))
    return codes


def _confidence_quantiles(report: ScoredReport, confidences: dict) -> None:
    for label in LABELS:
        values = np.concatenate(confidences[label]).astype(np.float32) if confidences[label] else np.zeros(0)
        if values.size:
            q = np.quantile(values, [0.1, 0.5, 0.9])
            report.confidence_quantiles[label] = {"p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2])}


def _gold_figures(report: ScoredReport, gold: str, gold_codes: list, pred_codes: list, tally) -> None:
    y = np.concatenate(gold_codes) if gold_codes else np.zeros(0, np.int8)
    p = np.concatenate(pred_codes) if pred_codes else np.zeros(0, np.int8)
    report.metrics = gold_metrics(y, p) if y.size else None
    report.calibration = tally.summary() if y.size else None
    if not y.size:
        report.gold_missing_reason = f"gold column {gold!r} has no values among {', '.join(LABELS)}"


def gold_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    """scikit-learn's per-class and averaged metrics, the confusion matrix, and the majority baseline."""
    from sklearn.metrics import accuracy_score, f1_score

    labels = list(range(len(LABELS)))
    majority = np.full_like(y, np.bincount(y, minlength=len(LABELS)).argmax())
    return {
        **class_metrics(y, pred),
        "weighted_f1": float(f1_score(y, pred, labels=labels, average="weighted", zero_division=0)),
        "majority_baseline": {
            "label": LABELS[int(majority[0])],
            "accuracy": float(accuracy_score(y, majority)),
            "macro_f1": float(f1_score(y, majority, labels=labels, average="macro", zero_division=0)),
        },
    }


def plot_report(report: ScoredReport, out: Path) -> None:
    """PNG: confidence histogram per predicted label; with gold labels also the confusion matrix and a
    reliability diagram (confidence bins vs observed accuracy, with row counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if report.metrics else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5), squeeze=False)
    ax = axes[0][0]
    centres = (CONFIDENCE_BINS[:-1] + CONFIDENCE_BINS[1:]) / 2
    width = (CONFIDENCE_BINS[1] - CONFIDENCE_BINS[0]) / (len(LABELS) + 1)
    for i, label in enumerate(LABELS):
        ax.bar(centres + (i - 1) * width, report.confidence_hist[label], width, label=label)
    ax.set(title="confidence of the predicted label", xlabel="max probability", ylabel="rows")
    ax.legend()
    if report.metrics:
        ax = axes[0][1]
        matrix = np.array(report.metrics["confusion"])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xticks(range(len(LABELS)), LABELS, rotation=20)
        ax.set_yticks(range(len(LABELS)), LABELS)
        ax.set(title=f"confusion (macro-F1 {report.metrics['macro_f1']:.3f})", xlabel="predicted", ylabel="gold")
        _plot_reliability(axes[0][2], report.calibration)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _plot_reliability(ax, calibration: dict) -> None:
    bins = [b for b in calibration["reliability"] if b["rows"]]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    centres = [(b["bin"][0] + b["bin"][1]) / 2 for b in calibration["reliability"]]
    accuracy = [b["accuracy"] or 0.0 for b in calibration["reliability"]]
    ax.bar(centres, accuracy, width=0.09, alpha=0.6, label="observed accuracy")
    ax.plot([b["mean_confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label="mean confidence")
    for b in bins:
        ax.text((b["bin"][0] + b["bin"][1]) / 2, (b["accuracy"] or 0) + 0.02, str(b["rows"]), ha="center", fontsize=8)
    ax.set(
        title=f"reliability (ECE {calibration['ece']:.3f}, log-loss {calibration['log_loss']:.3f})",
        xlabel="confidence (max probability)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.1),
    )
    ax.legend(loc="upper left", fontsize=8)


REVIEW_COLUMNS = ("text_1", "text_2", "image_1", "image_2", PRED_LABEL, *PROB_COLUMNS, DOMAIN_SCORE, IN_DOMAIN)


@dataclass
class ReviewQueue:
    path: str
    rows: int  # rows written to the queue
    total: int  # rows in the scored file
    below: float | None
    top: int | None
    out_of_domain: bool = False


def _least_confident(
    parts: list[Storage], below: float | None, top: int | None, chunk_rows: int, out_of_domain: bool = False
) -> tuple[np.ndarray, int]:
    """Row numbers to review, least confident first (ties in file order), and the file's row count.
    ``out_of_domain``: only rows whose ``in_domain`` is false."""
    keep_conf, keep_rows, offset = np.zeros(0), np.zeros(0, np.int64), 0
    columns = [*PROB_COLUMNS, *([IN_DOMAIN] if out_of_domain else [])]
    for batch in _batches(parts, columns, chunk_rows):
        confidence = np.stack([batch.column(c).to_numpy(zero_copy_only=False) for c in PROB_COLUMNS], 1).max(1)
        wanted = confidence < below if below is not None else np.ones(batch.num_rows, bool)
        if out_of_domain:
            wanted &= np.array([flag is False for flag in batch.column(IN_DOMAIN).to_pylist()], bool)
        chosen = np.flatnonzero(wanted)
        keep_conf = np.concatenate([keep_conf, confidence[chosen]])
        keep_rows = np.concatenate([keep_rows, chosen + offset])
        offset += batch.num_rows
        if top is not None and len(keep_rows) > top:  # memory stays O(top) while streaming
            order = np.lexsort((keep_rows, keep_conf))[:top]
            keep_conf, keep_rows = keep_conf[order], keep_rows[order]
    order = np.lexsort((keep_rows, keep_conf))
    return keep_rows[order][: top if top is not None else None], offset


def write_review_queue(
    scored: Path | str,
    out: Path | str,
    below: float | None = LOW_CONFIDENCE,
    top: int | None = None,
    gold: str = "label",
    chunk_rows: int = 65536,
    out_of_domain: bool = False,
) -> ReviewQueue:
    """Write the rows a person should look at: max probability below ``below`` and/or the ``top`` least
    confident (``out_of_domain``: among rows flagged out of the model's domain only), least confident first,
    with ids, texts, image references, label, probabilities, in-domain score and the gold column ``gold`` (an
    empty one to fill in when the scored file has none: the filled queue is training data for
    ``mmscore train FILLED --base MODEL``). CSV or Parquet by the extension of ``out``."""
    import pyarrow.csv as pacsv

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{out}: the review queue must be a .csv or .parquet file")
    parts = scored_parts(scored)
    schema = _scored_schema(str(scored), parts)
    shown = (*REVIEW_COLUMNS, *IMAGE_STATUS_COLUMNS, TEXT_STATUS, gold)
    wanted = [c for c in schema.names if c.startswith("id") or c in shown]
    if out_of_domain and IN_DOMAIN not in schema.names:
        raise InputError(f"{scored}: no {IN_DOMAIN} column (scored by an older mmscore); score it again")
    rows, total = _least_confident(parts, below, top, chunk_rows, out_of_domain)
    wanted_rows = set(rows.tolist())
    pieces, found, offset = [], [], 0
    for batch in _batches(parts, wanted, chunk_rows):
        local = [i for i in range(batch.num_rows) if i + offset in wanted_rows]
        if local:
            pieces.append(pa.Table.from_batches([batch]).take(local))
            found += [i + offset for i in local]
        offset += batch.num_rows
    empty = schema.empty_table().select(wanted)
    table = pa.concat_tables(pieces) if pieces else empty
    position = {row: i for i, row in enumerate(found)}
    table = table.take(pa.array([position[r] for r in rows.tolist()], pa.int64()))  # typed: may be empty
    probs = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in PROB_COLUMNS], 1)
    table = table.append_column("confidence", pa.array(probs.max(1), pa.float32()))
    if gold not in table.column_names:  # for a person to fill: the filled file trains with `mmscore train --base`
        table = table.append_column(gold, pa.nulls(table.num_rows, pa.string()))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if out.suffix.lower() == ".csv":
            pacsv.write_csv(table, out)
        else:
            pq.write_table(table, out)
    except (OSError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise OutputError(f"{out}: cannot write the review queue ({first_line(exc)})") from exc
    return ReviewQueue(str(out), table.num_rows, total, below, top, out_of_domain)
