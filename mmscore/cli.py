"""The `mmscore` command line: parses options, calls library functions, renders with rich."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import mmscore
from mmscore import defaults, render
from mmscore.cli_options import (
    ActorsOpt,
    AddressOpt,
    BaseOpt,
    BatchSizeOpt,
    BelowOpt,
    CvSeedsOpt,
    DataArg,
    EngineOpt,
    EpochsOpt,
    FetchWorkersOpt,
    FineTuneEpochsOpt,
    FineTuneOpt,
    FoldsOpt,
    GoldOpt,
    HeadsOpt,
    ImageCacheOpt,
    ImageEncoderOpt,
    ImageRootOpt,
    ImagesOpt,
    InputArg,
    JsonOutOpt,
    LimitOpt,
    LossOpt,
    ModelOpt,
    NewWeightOpt,
    OfflineOpt,
    OutOfDomainOpt,
    OutOfDomainPairsOpt,
    OutOpt,
    OutputDirOpt,
    OutputOpt,
    PairFeaturesOpt,
    PartRowsOpt,
    PhotosOpt,
    PlotOpt,
    PrecisionOpt,
    PrivateOpt,
    ResumeOpt,
    ReviewOpt,
    ScoredArg,
    SeedOpt,
    TextEncoderOpt,
    TopOpt,
)

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
    render.print_doctor(console, report)
    if not report.passed:
        raise fail("some checks failed", code=1)
    console.print("[green]all checks passed[/]")


@command
def score(
    input: InputArg,
    output: OutputOpt = None,
    output_dir: OutputDirOpt = None,
    model: ModelOpt = None,
    image_cache: ImageCacheOpt = None,
    batch_size: BatchSizeOpt = defaults.BATCH_SIZE,
    fetch_workers: FetchWorkersOpt = defaults.FETCH_WORKERS,
    offline: OfflineOpt = False,
    resume: ResumeOpt = False,
    limit: LimitOpt = None,
    part_rows: PartRowsOpt = None,
    allow_private_urls: PrivateOpt = False,
    image_root: ImageRootOpt = None,
    precision: PrecisionOpt = defaults.PRECISION,
    engine: EngineOpt = defaults.ENGINE,
    address: AddressOpt = None,
    actors: ActorsOpt = None,
) -> None:
    """Label every pair: stream the input, fetch and cache images, write one output row per input row.

    Output columns: all input columns, pred_label, prob_contradictory, prob_implies, prob_noentailment,
    image_1_status, image_2_status, text_status, in_domain_score, in_domain. Run facts go into the Parquet
    file's metadata (with --output-dir: DIR/_mmscore.json).
    """
    from mmscore.precision import EmulatedPrecisionWarning
    from mmscore.scorer import Scorer, ScoreRun

    # a wrong file, column, output or engine stops here, before the model loads; the opened input is scored
    run = ScoreRun.check(input, output, output_dir, engine=engine, address=address, actors=actors)
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
    summary = render.score_with_progress(console, scorer, run, limit=limit, resume=resume, part_rows=part_rows)
    render.print_score_summary(console, summary, run.target.spec)
    card = scorer.predictor.card
    if not card.uses_images:
        console.print(
            f"note: this model does not use images ({card.image_rows} of {card.training_rows} "
            "training rows had one); image statuses are reported, predictions come from the texts"
        )


@command
def train(
    data: DataArg,
    out: OutOpt = Path(defaults.MODEL_OUT),
    images: ImagesOpt = None,
    folds: FoldsOpt = defaults.FOLDS,
    seed: SeedOpt = defaults.SEED,
    epochs: EpochsOpt = defaults.EPOCHS,
    heads: HeadsOpt = defaults.HEADS,
    cv_seeds: CvSeedsOpt = defaults.CV_SEEDS,
    loss: LossOpt = None,
    fine_tune: FineTuneOpt = False,
    fine_tune_epochs: FineTuneEpochsOpt = defaults.FINE_TUNE_EPOCHS,
    pair_features: PairFeaturesOpt = True,
    photos: PhotosOpt = None,
    text_encoder: TextEncoderOpt = defaults.TEXT_ENCODER,
    image_encoder: ImageEncoderOpt = defaults.IMAGE_ENCODER,
    image_cache: ImageCacheOpt = None,
    offline: OfflineOpt = False,
    allow_private_urls: PrivateOpt = False,
    image_root: ImageRootOpt = None,
    base: BaseOpt = None,
    new_weight: NewWeightOpt = defaults.NEW_WEIGHT,
    out_of_domain_pairs: OutOfDomainPairsOpt = None,
) -> None:
    """Train the entailment head on frozen encoders: cached embeddings, k-fold CV, loss chosen by macro-F1.

    With --fine-tune, each fold (and the final model) also trains the text encoder, starting from the head
    fitted on frozen embeddings; the model directory then holds the tuned encoder weights too.
    """
    from mmscore.training import train as train_model

    options = dict(locals())  # every option is a parameter of mmscore.train (tests/test_architecture.py)
    del options["train_model"]
    render.report_devices(console)
    with console.status("training...") as status:
        result = train_model(**options, progress=lambda message: status.update(message))
    render.print_training(console, result, folds)
    console.print(f"saved model to {out} in {result.seconds:.1f} s")


@command
def train_pair_reader(
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA",
            help="Labelled sentence pairs, .csv or .parquet: premise/sentence1, hypothesis/sentence2, "
            "label/gold_label (entailment, neutral, contradiction; other labels are dropped and counted) and "
            "optionally captionID/group (pairs of one group stay on one side of the dev split).",
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for pair_reader.npz and its checkpoint.")] = Path("pair_reader"),
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the pairs.")] = defaults.PAIR_READER_EPOCHS,
    batch_size: Annotated[int, typer.Option(min=2, help="Pairs per step.")] = defaults.PAIR_READER_BATCH,
    lora_rank: Annotated[int, typer.Option(min=0, help="LoRA rank; 0 tunes the layers in full.")] = 32,
    encoder: Annotated[
        str,
        typer.Option(
            help="The transformer the reader is built on: minilm-l6-v2 (4x faster to train) or mpnet-base-v2 (the "
            "shipped reader's: 12 layers, 768 wide).",
        ),
    ] = defaults.PAIR_READER_ENCODER,
    learning_rate: Annotated[float, typer.Option(help="Peak rate \\[default: 1e-3 LoRA, 2e-4 mpnet; 5e-5 full]")] = 0.0,
    dev_share: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of groups held out.")] = 0.02,
    seed: Annotated[int, typer.Option(help="Seed for the batch order and initialisation.")] = defaults.SEED,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out (same data, settings).")] = False,
    start_from: Annotated[
        Path | None, typer.Option(help="A pair_reader.npz to continue training from (same --lora-rank).")
    ] = None,
    swap_contradictions: Annotated[
        bool, typer.Option(help="Also train each contradiction with its texts swapped (contradiction is symmetric).")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="Then make --out a whole model: this model's main head ('default': the shipped one), the new pair "
            "reader, and a second head refitted on DATA's dev pairs (and pairs of different groups, NoEntailment).",
        ),
    ] = None,
) -> None:
    """Train the pair reader: a transformer reading both texts as one sequence, entailment / neutral / contradiction
    (--encoder: MiniLM by default; the shipped reader is mpnet-base-v2, see train/README.md for its commands).

    Tokenisation is cached, a checkpoint is written every 250 steps (--resume continues from it), and a GPU is
    used when TensorFlow sees one. Writes OUT/pair_reader.npz with its dev accuracy.
    """
    from mmscore.training.pair_reader import PairReaderOptions, train_pair_reader

    options = PairReaderOptions(
        str(data), out, epochs, batch_size, learning_rate, lora_rank, dev_share, 0, seed, resume,
        encoder=encoder, start_from=str(start_from or ""), swap_contradictions=swap_contradictions,
    )  # fmt: skip
    render.report_devices(console)
    render.print_pair_reader(console, render.train_with_progress(console, train_pair_reader, options), options)
    if model is not None:
        from mmscore.training.second_head import rebuild_second_head

        with console.status("refitting the second head...") as status:
            card = rebuild_second_head(data, out / "pair_reader.npz", model, out, dev_share, status.update)
        render.print_second_head(console, card.out_of_domain)
        console.print(f"saved model to {out}: {card.model_id()}")


@command
def report(
    scored: ScoredArg,
    gold: GoldOpt = "label",
    json_out: JsonOutOpt = False,
    plot: PlotOpt = None,
    review: ReviewOpt = None,
    below: BelowOpt = None,
    top: TopOpt = None,
    out_of_domain: OutOfDomainOpt = False,
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
    render.print_report(console, result)
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


if __name__ == "__main__":
    app()
