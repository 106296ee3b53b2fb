"""The `mmscore` command line: parses options, calls library functions, renders with rich."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.table import Table

import mmscore

# TensorFlow start-up chatter (CUDA probes, oneDNN notes) is noise for a command-line user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

app = typer.Typer(
    help="Label pairs of posts (text + image) as Implies, Contradictory or NoEntailment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def command(function):
    """Register ``function`` as a command whose :class:`~mmscore.errors.MmscoreError` becomes one line, exit 2."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        from mmscore.errors import MmscoreError

        try:
            return function(*args, **kwargs)
        except MmscoreError as exc:
            raise fail(str(exc)) from exc

    return app.command()(run)


def _require_folder(path: Path | None, option: str) -> None:
    """Stop with one line when a folder option names something that is not a folder."""
    if path is not None and not path.is_dir():
        raise fail(f"{path}: {option} must be a folder")


def _version(value: bool) -> None:
    if value:
        console.print(f"mmscore {mmscore.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """mmscore: batch multimodal entailment from the command line."""


@command
def doctor() -> None:
    """Check the installation: load both encoders offline and test them on real inputs."""
    from mmscore.doctor import run_doctor
    from mmscore.tensorflow_runtime import import_tensorflow

    import_tensorflow()

    with console.status("loading encoders and running checks..."):
        report = run_doctor()
    table = Table(title="mmscore doctor", show_header=False)
    for name, value in report.versions.items():
        table.add_row("version", name, value)
    table.add_row("devices", "", ", ".join(report.devices))
    for name, seconds in report.load_seconds.items():
        table.add_row("load", name, f"{seconds:.2f} s")
    for name, value in report.cosines.items():
        table.add_row("cosine", name, f"{value:.3f}")
    for photo, top in report.photos.items():
        table.add_row("photo", photo, ", ".join(f"{label} {p:.2f}" for label, p in top))
    for check, ok in report.checks.items():
        table.add_row("check", check, "[green]pass[/]" if ok else "[red]FAIL[/]")
    console.print(table)
    if not report.passed:
        raise fail("some checks failed", code=1)
    console.print("[green]all checks passed[/]")


def _counts_table(title: str, counts: dict, total: int) -> Table:
    table = Table(title=title)
    table.add_column("value")
    table.add_column("count", justify="right")
    table.add_column("%", justify="right")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(str(key), str(n), f"{100 * n / max(total, 1):.1f}")
    return table


ImageCacheOpt = Annotated[
    Path | None, typer.Option("--image-cache", help="Image cache directory \\[default: ~/.cache/mmscore/images].")
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Use only cached or local images; fetch nothing.")]
ImageRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--image-root",
        help="Folder that local image paths are read from; nothing outside it is read (symlinks resolved) "
        "(default: the input file's folder; stdin: the current folder).",
    ),
]
PrivateOpt = Annotated[
    bool,
    typer.Option("--allow-private-urls", help="Allow image URLs on private/loopback hosts (internal use, tests)."),
]


@command
def score(
    input: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="Pairs to label: a .csv/.parquet file, a folder or glob of them (read in sorted order as one "
            "table), any of those as s3:// or gs:// URI (AWS_* variables give credentials and endpoint), or - for "
            "CSV on stdin.",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o", "--output", help="Where to write the labelled Parquet file: a path or an s3:// or gs:// URI."
        ),
    ] = None,
    output_dir: Annotated[
        str | None,
        typer.Option(
            help="Instead of -o: a folder (path or URI) that keeps the output as ordered Parquet parts "
            "(part-000000.parquet, ...; read as one table by pandas, pyarrow, Spark, mmscore report), with "
            "the run facts in _mmscore.json. Skips assembling one file: the choice for very large runs."
        ),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model directory \\[default: the model shipped with mmscore].")
    ] = None,
    image_cache: ImageCacheOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per model batch.")] = 32,
    fetch_workers: Annotated[int, typer.Option(min=1, help="Concurrent image downloads.")] = 16,
    offline: OfflineOpt = False,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run into the same output (file or folder).")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=0, help="Score only the first N rows.")] = None,
    part_rows: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Rows per written part (a Ray shard), rounded up to whole chunks of batch-size × 8 rows "
            "\\[default: one chunk; Ray: four]. With --output-dir: bigger parts, fewer files; a crash costs "
            "up to one part's work.",
        ),
    ] = None,
    allow_private_urls: PrivateOpt = False,
    image_root: ImageRootOpt = None,
    precision: Annotated[
        str,
        typer.Option(
            help="Encoders' number format: auto (bfloat16 where the CPU has avx512_bf16/AMX or the GPU is "
            "Ampere or newer, else float32), float32, bfloat16. The head always runs in float32."
        ),
    ] = "auto",
    engine: Annotated[
        str,
        typer.Option(
            help="local (this process) or ray (a Ray cluster through Ray Data; Parquet input; needs "
            "mmscore\\[ray]). Both write the same rows, order, values and schema."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="With --engine ray: the cluster to join (auto, ray://HOST:10001); default: a local Ray."),
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(min=1, help="With --engine ray: model actors \\[default: one per node, or one per GPU]."),
    ] = None,
) -> None:
    """Label every pair: stream the input, fetch and cache images, write one output row per input row.

    Output columns: all input columns, pred_label, prob_contradictory, prob_implies, prob_noentailment,
    image_1_status, image_2_status, text_status. Run facts go into the Parquet file's metadata (with
    --output-dir: DIR/_mmscore.json).
    """
    from mmscore.io.pairs_reader import open_pairs
    from mmscore.precision import EmulatedPrecisionWarning
    from mmscore.scorer import Scorer, scored_output

    target = scored_output(output, output_dir)
    _require_folder(image_root, "--image-root")
    # a wrong file or missing column stops here, before the model loads; the opened input is what gets scored
    source = open_pairs(input) if input != "-" else None
    if source:
        target.check_apart(source.files)
    engine_options = _engine_options(engine, address, actors)
    with console.status("loading model..."), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", EmulatedPrecisionWarning)
        scorer = Scorer(
            model,
            image_cache=image_cache,
            image_root=image_root,
            offline=offline,
            allow_private_urls=allow_private_urls,
            batch_size=batch_size,
            fetch_workers=fetch_workers,
            precision=precision,
        )
    for warning in warned:
        if issubclass(warning.category, EmulatedPrecisionWarning):
            console.print(f"warning: {warning.message}", highlight=False, soft_wrap=True)
    run_options = {**engine_options, "output_dir" if target.folder else "output": target.spec}
    run_options.update(limit=limit, resume=resume, part_rows=part_rows)
    summary = _score_with_progress(scorer, source or input, run_options)
    _print_score_summary(summary, target.spec)
    card = scorer.predictor.card
    if not card.uses_images:
        console.print(
            f"note: this model does not use images ({card.image_rows} of {card.training_rows} "
            "training rows had one); image statuses are reported, predictions come from the texts"
        )


def _engine_options(engine: str, address: str | None, actors: int | None) -> dict:
    """``score_file``'s engine arguments; a one-line error for an unknown engine or a missing Ray."""
    from mmscore.scorer import check_engine

    check_engine(engine)
    if engine == "local":
        return {"engine": engine}
    from mmscore.ray_engine import RayOptions, require_ray

    require_ray()
    return {"engine": engine, "ray_options": RayOptions(address=address, actors=actors)}


def _score_with_progress(scorer, input, run_options: dict):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mmscore.pipeline import SEEN

    columns = [
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} rows/s"),
        TextColumn("images fetched {task.fields[fetched]} cached {task.fields[cached]} failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, disable=not console.is_terminal, transient=False) as progress:
        task = progress.add_task("score", total=None, rate=0.0, fetched=0, cached=0, failed=0)

        def on_progress(rows: int, statuses) -> None:
            elapsed = progress.tasks[task].elapsed or 1e-9
            done = progress.tasks[task].completed + rows
            failed = sum(n for s, n in statuses.items() if s not in (*SEEN, "missing"))
            progress.update(
                task,
                advance=rows,
                rate=done / elapsed,
                fetched=statuses.get("ok", 0),
                cached=statuses.get("cached", 0),
                failed=failed,
            )

        def on_start(total: int | None) -> None:
            progress.update(task, total=total)

        return scorer.score_file(input, on_start=on_start, on_progress=on_progress, **run_options)


def _print_score_summary(summary, output: str) -> None:
    line = (
        f"scored {summary.rows} rows -> {output} in {summary.seconds:.1f} s ({summary.rows_per_second:.1f} rows/s, "
        f"encoders in {summary.precision}); " + ", ".join(f"{k} {v}" for k, v in sorted(summary.labels.items()))
    )
    if summary.domain.get("out_of_domain") or summary.domain.get("in_domain"):
        line += f"; out of domain {summary.domain.get('out_of_domain', 0)}"
    flagged = {k: v for k, v in summary.text_statuses.items() if k != "ok"}
    if flagged:
        line += "; rows flagged in text_status: " + ", ".join(f"{k} {v}" for k, v in sorted(flagged.items()))
    if not console.is_terminal:
        console.print(line, highlight=False, soft_wrap=True)
        return
    console.print(_counts_table("predicted labels", dict(summary.labels), summary.rows - summary.resumed_rows))
    images = sum(summary.image_statuses.values())
    console.print(_counts_table("image status", dict(summary.image_statuses), images))
    console.print(line, highlight=False)


@command
def train(
    data: Annotated[
        str,
        typer.Argument(
            help="Labelled pairs: text_1, text_2, label \\[, image_*, id_*]. Anything score reads: a .csv/.parquet "
            "file, a folder or glob of them, an s3:// or gs:// URI, or - for CSV on stdin."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")] = Path("model"),
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder of images named <id>.<ext> (uses id_1/id_2 columns).")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for folds and initialisation.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs per head fit.")] = 60,
    loss: Annotated[
        list[str] | None,
        typer.Option(
            help="Loss to train with; repeat to compare several by CV macro-F1 (cross_entropy, class_weighted, "
            "focal) \\[default: focal]."
        ),
    ] = None,
    fine_tune: Annotated[
        bool,
        typer.Option(
            "--fine-tune", help="Also train the text encoder end to end with the head (GPU recommended; slow on CPU)."
        ),
    ] = False,
    fine_tune_epochs: Annotated[int, typer.Option(min=1, help="Epochs of end-to-end training with --fine-tune.")] = 2,
    pair_features: Annotated[
        bool,
        typer.Option(
            "--pair-features/--no-pair-features",
            help="Also feed the head lexical overlap features of the two texts (shared words, numbers, @mentions).",
        ),
    ] = True,
    photos: Annotated[
        Path | None,
        typer.Option(
            "--photos",
            help="Folder of real photos unrelated to the pairs. A quarter is held out to measure how often attaching "
            "unrelated photos changes a label; the rest (with crops) are attached to training rows, labels unchanged, "
            "so the head learns that a present image is no evidence. Without it, images are used only when at least "
            "25% of training rows have their own.",
        ),
    ] = None,
    text_encoder: Annotated[
        str,
        typer.Option(
            "--text-encoder",
            help="Text encoder: a registered name (minilm-l6-v2), a keras-hub preset name (bert_base_en_uncased; "
            "needs the hub reachable) or a local preset folder (keras-hub or Hugging Face format).",
        ),
    ] = "minilm-l6-v2",
    image_encoder: Annotated[
        str,
        typer.Option(
            "--image-encoder",
            help="Image encoder: a registered name (mobilenet-v2-imagenet), a keras-hub preset name "
            "(resnet_50_imagenet) or a local preset folder.",
        ),
    ] = "mobilenet-v2-imagenet",
    image_cache: ImageCacheOpt = None,
    offline: OfflineOpt = False,
    allow_private_urls: PrivateOpt = False,
    image_root: ImageRootOpt = None,
) -> None:
    """Train the entailment head on frozen encoders: cached embeddings, k-fold CV, loss chosen by macro-F1.

    With --fine-tune, each fold (and the final model) also trains the text encoder, starting from the head
    fitted on frozen embeddings; the model directory then holds the tuned encoder weights too.
    """
    from mmscore.scorer import build_fetcher, default_image_root
    from mmscore.training import LEXICAL_FEATURES, TrainOptions, train_model

    _require_folder(images, "--images")
    _require_folder(photos, "--photos")
    _require_folder(image_root, "--image-root")
    try:
        options = TrainOptions(
            losses=tuple(loss) if loss else TrainOptions.losses,
            folds=folds,
            seed=seed,
            epochs=epochs,
            fine_tune=fine_tune,
            fine_tune_epochs=fine_tune_epochs,
            pair_features=LEXICAL_FEATURES if pair_features else "",
            text_encoder=text_encoder,
            image_encoder=image_encoder,
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    # --images names files by id inside that folder; otherwise image_* paths are read where scoring reads them.
    root = image_root or images or default_image_root(data)
    fetcher = build_fetcher(image_cache, offline=offline, allow_private_urls=allow_private_urls, image_root=root)
    _report_devices()
    try:
        with console.status("training...") as status:
            result = train_model(
                data, out, fetcher, images, options, progress=lambda m: status.update(m), photos=photos
            )
    except ValueError as exc:  # settings the recipe refuses (e.g. more folds than rows)
        raise fail(str(exc)) from exc
    finally:
        fetcher.close()
    _print_training(result, folds)
    console.print(f"saved model to {out} in {result.seconds:.1f} s")


def _print_training(result, folds: int) -> None:
    for name, metrics in result.per_loss.items():
        marker = " (chosen)" if name == result.chosen_loss else ""
        console.print(_metrics_table(f"{folds}-fold CV, loss={name}{marker}", metrics))
    console.print(_per_fold_table(result.per_loss[result.chosen_loss]))
    card = result.card
    if not card.uses_images:
        console.print(
            f"this model does not use images: {card.image_rows} of {card.training_rows} training rows had one and "
            "no --photos were given (scoring still fetches images and reports their status)"
        )
    console.print(
        f"skipped rows (empty text): {result.skipped_rows}; images: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.image_statuses.items()))
        + f"; encoder calls this run: {dict(result.encoded)}; offsets {card.decision_offsets}; "
        f"temperature {card.temperature:.3f}"
    )


def _report_devices() -> None:
    from mmscore.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        console.print(f"training on GPU ({len(gpus)} device(s))")
    else:
        console.print("training on CPU")


def _per_fold_table(metrics: dict) -> Table:
    """Per fold and overall: macro-F1, calibration before/after the temperature, photo robustness."""
    from mmscore.training import PROBES

    table = Table(title="per fold: calibration (offsets and temperature cross-fitted) and unrelated-photo probe")
    columns = ["fold", "macro-F1", "T", "ECE before → after", "log-loss before → after", "Brier before → after"]
    probes = [p for p in PROBES if p in metrics["robustness"]]
    columns += [f"{p.replace('_', ' ')}: flips / ΔF1" for p in probes]
    for column in columns:
        table.add_column(column, justify="right")

    def row(name, f1, temperature, before, after, robustness):
        cells = [name, f"{f1:.3f}", temperature]
        cells += [f"{before[k]:.3f} → {after[k]:.3f}" for k in ("ece", "log_loss", "brier")]
        cells += [f"{100 * robustness[p]['flip_rate']:.1f}% / {robustness[p]['macro_f1_change']:+.3f}" for p in probes]
        table.add_row(*cells)

    for fold in metrics["per_fold"]:
        t = f"{fold['temperature']:.2f}"
        row(str(fold["fold"]), fold["macro_f1"], t, fold["calibration_before"], fold["calibration_after"], fold)
    calib = metrics["calibration"]
    row("all", metrics["macro_f1"], "", calib["before"], calib["after"], metrics["robustness"])
    return table


def _metrics_table(title: str, metrics: dict):
    from mmscore.labels import LABELS

    table = Table(title=title)
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for name, m in metrics["per_class"].items():
        table.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    table.add_row("macro-F1", "", "", f"{metrics['macro_f1']:.3f}", "", style="bold")
    table.add_row("accuracy", "", "", f"{metrics['accuracy']:.3f}", "")
    confusion = Table(title="confusion (rows: gold, columns: predicted)")
    confusion.add_column("gold \\ pred")
    for name in LABELS:
        confusion.add_column(name[:13], justify="right")
    for name, row in zip(LABELS, metrics["confusion"], strict=True):
        confusion.add_row(name, *map(str, row))
    return Group(table, confusion)


@command
def report(
    scored: Annotated[
        str,
        typer.Argument(
            metavar="SCORED",
            help="What `mmscore score` wrote: a Parquet file or an --output-dir folder, a path or a URI.",
        ),
    ],
    gold: Annotated[str, typer.Option(help="Column holding gold labels, when present.")] = "label",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also write a PNG: confidence histogram; with gold labels, confusion and reliability."),
    ] = None,
    review: Annotated[
        Path | None,
        typer.Option(
            help="Write the rows a person should look at (.csv or .parquet): ids, texts, image references, "
            "label, probabilities, least confident first."
        ),
    ] = None,
    below: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Low-confidence threshold on the max probability, for the report and --review "
            "(default 0.6; with --top and no --below: no threshold).",
        ),
    ] = None,
    top: Annotated[int | None, typer.Option(min=1, help="With --review: at most the N least confident rows.")] = None,
    out_of_domain: Annotated[
        bool,
        typer.Option(
            "--out-of-domain",
            help="With --review: only rows flagged out of the model's domain (in_domain false); with no --below "
            "and no --top, all of them.",
        ),
    ] = False,
) -> None:
    """Summarise a scored file: label and confidence distributions, image statuses, metrics and calibration vs
    gold labels, and (with --review) a queue of the least confident rows."""
    import json

    from mmscore.report import LOW_CONFIDENCE, build_report, plot_report, write_review_queue

    threshold = below if below is not None else LOW_CONFIDENCE
    result = build_report(scored, gold, low_confidence=threshold)
    queue = None
    if review:
        queue_below = below if below is not None or (top is None and not out_of_domain) else None
        queue = write_review_queue(scored, review, queue_below, top, gold, out_of_domain=out_of_domain)
    if plot:
        plot_report(result, plot)
    if json_out:
        doc = result.to_json()
        if queue:
            doc["review"] = {"file": queue.path, "rows": queue.rows, "below": queue.below, "top": queue.top}
        print(json.dumps(doc, indent=2, sort_keys=True))
        return
    _print_report(result)
    if queue:
        which = " and ".join(
            ([f"max probability < {queue.below:g}"] if queue.below is not None else [])
            + ([f"the {queue.top} least confident"] if queue.top else [])
            + (["out of domain"] if queue.out_of_domain else [])
        )
        console.print(
            f"review queue: {queue.rows} rows ({100 * queue.rows / max(queue.total, 1):.1f}% of {queue.total}; "
            f"{which}) -> {queue.path}",
            highlight=False,
        )
    if plot:
        console.print(f"plot written to {plot}")


def _print_report(result) -> None:
    from mmscore.labels import LABELS

    facts = result.run_facts
    console.print(
        f"[bold]{result.path}[/]: {result.rows} rows; model {facts.get('model_id', '?')}, "
        f"mmscore {facts.get('mmscore_version', '?')}, finished {facts.get('finished_at', '?')}, "
        f"{facts.get('rows_per_second', '?')} rows/s",
        highlight=False,
    )
    if result.domain and result.domain.warns:
        console.print(
            f"[bold yellow]warning:[/] {100 * result.domain.out_share:.0f}% of rows are out of domain: this model was "
            "trained on other kinds of pairs, so its labels and confidence say little about them. Train on your "
            "own labels: mmscore train LABELLED.csv --out MODEL, then mmscore score ... --model MODEL",
            highlight=False,
        )
    table = Table(title="predicted labels and confidence (max probability)")
    for column in ("label", "rows", "%", "p10", "median", "p90", "histogram 0.33 → 1.0"):
        table.add_column(column, justify="left" if column in ("label", "histogram 0.33 → 1.0") else "right")
    bars = " ▁▂▃▄▅▆▇█"
    for label in LABELS:
        n = result.predicted.get(label, 0)
        hist = result.confidence_hist[label]
        top = max(hist) or 1
        spark = "".join(bars[round(8 * h / top)] for h in hist)
        q = result.confidence_quantiles.get(label, {})
        table.add_row(
            label,
            str(n),
            f"{100 * n / max(result.rows, 1):.1f}",
            *(f"{q[k]:.2f}" if k in q else "-" for k in ("p10", "p50", "p90")),
            spark,
        )
    console.print(table)
    if result.domain:
        console.print(_domain_table(result.domain))
    share = 100 * result.low_confidence / max(result.rows, 1)
    console.print(
        f"low confidence (max probability < {result.low_confidence_threshold:g}): {result.low_confidence} rows "
        f"({share:.1f}%)"
    )
    for column, counts in result.image_statuses.items():
        console.print(_counts_table(column, dict(counts), sum(counts.values())))
    if result.gold_outside_labels:
        console.print(f"gold labels outside {', '.join(LABELS)}: {dict(result.gold_outside_labels)} (not scored)")
    if result.metrics is None:
        console.print(f"no per-class report: {result.gold_missing_reason}")
        return
    console.print(_metrics_table(f"against gold column {result.gold_column!r}", result.metrics))
    m, base = result.metrics, result.metrics["majority_baseline"]
    console.print(
        f"weighted-F1 {m['weighted_f1']:.3f}; majority baseline (always {base['label']}): "
        f"accuracy {base['accuracy']:.3f}, macro-F1 {base['macro_f1']:.3f}"
    )
    console.print(_calibration_table(result.calibration))


def _domain_table(domain) -> Table:
    """In-domain and out-of-domain rows side by side: share, predicted labels, mean confidence."""
    from mmscore.labels import LABELS

    facts = domain.to_json()
    known = max(facts["in_domain"]["rows"] + facts["out_of_domain"]["rows"], 1)
    title = f"in the model's domain? ({100 * facts['out_of_domain_share']:.1f}% of rows out of domain)"
    if facts["unknown_rows"]:
        title += f"; {facts['unknown_rows']} rows without a score (model has no in-domain reference)"
    table = Table(title=title)
    for column in ("rows", "n", "%", *LABELS, "mean confidence"):
        table.add_column(column, justify="left" if column == "rows" else "right")
    for name, side in (("in domain", facts["in_domain"]), ("out of domain", facts["out_of_domain"])):
        mean = side["mean_confidence"]
        counts = [str(side["predicted_counts"][k]) for k in LABELS]
        table.add_row(
            name, str(side["rows"]), f"{100 * side['rows'] / known:.1f}", *counts, f"{mean:.3f}" if mean else "-"
        )
    return table


def _calibration_table(calibration: dict) -> Table:
    table = Table(
        title=f"calibration vs gold: ECE {calibration['ece']:.3f}, log-loss {calibration['log_loss']:.3f}, "
        f"Brier {calibration['brier']:.3f}; mean confidence {calibration['mean_confidence']:.3f} at accuracy "
        f"{calibration['accuracy']:.3f}"
    )
    for column in ("confidence bin", "rows", "mean confidence", "accuracy"):
        table.add_column(column, justify="right")
    for b in calibration["reliability"]:
        if b["rows"]:
            low, high = b["bin"]
            table.add_row(
                f"{low:.1f}–{high:.1f}", str(b["rows"]), f"{b['mean_confidence']:.3f}", f"{b['accuracy']:.3f}"
            )
    return table


if __name__ == "__main__":
    app()
