"""The command line's options and arguments, each declared once by name (type, flag, help, bounds); `cli.py`'s
commands list them one per line. Defaults stay in the commands' signatures, read from :mod:`mmscore.defaults`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmscore import defaults

# shared by score and train
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

# score
InputArg = Annotated[
    str,
    typer.Argument(
        metavar="INPUT",
        help="Pairs to label: a .csv/.parquet file, a folder or glob of them (read in sorted order as one "
        "table), any of those as s3:// or gs:// URI (AWS_* variables give credentials and endpoint), or - for "
        "CSV on stdin.",
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option("-o", "--output", help="Where to write the labelled Parquet file: a path or an s3:// or gs:// URI."),
]
OutputDirOpt = Annotated[
    str | None,
    typer.Option(
        help="Instead of -o: a folder (path or URI) that keeps the output as ordered Parquet parts "
        "(part-000000.parquet, ...; read as one table by pandas, pyarrow, Spark, mmscore report), with "
        "the run facts in _mmscore.json. Skips assembling one file: the choice for very large runs."
    ),
]
ModelOpt = Annotated[Path | None, typer.Option(help="Model directory \\[default: the model shipped with mmscore].")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Pairs per model batch.")]
FetchWorkersOpt = Annotated[int, typer.Option(min=1, help="Concurrent image downloads.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue an interrupted run into the same output (file or folder).")]
LimitOpt = Annotated[int | None, typer.Option(min=0, help="Score only the first N rows.")]
PartRowsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Rows per written part (a Ray shard), rounded up to whole chunks of batch-size × 8 rows "
        "\\[default: one chunk; Ray: four]. With --output-dir: bigger parts, fewer files; a crash costs "
        "up to one part's work.",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="Encoders' number format: auto (bfloat16 where the CPU has avx512_bf16/AMX or the GPU is "
        "Ampere or newer, else float32), float32, bfloat16. The head always runs in float32."
    ),
]
EngineOpt = Annotated[
    str,
    typer.Option(
        help="local (this process) or ray (a Ray cluster through Ray Data; Parquet input; needs "
        "mmscore\\[ray]). Both write the same rows, order, values and schema."
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(help="With --engine ray: the cluster to join (auto, ray://HOST:10001); default: a local Ray."),
]
ActorsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="With --engine ray: model actors \\[default: one per node, or one per GPU]."),
]

# train
DataArg = Annotated[
    str,
    typer.Argument(
        metavar="DATA",
        help="Labelled pairs: text_1, text_2, label \\[, image_*, id_*]. Anything score reads: a .csv/.parquet "
        "file, a folder or glob of them, an s3:// or gs:// URI, or - for CSV on stdin.",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Model directory to write.")]
ImagesOpt = Annotated[
    Path | None, typer.Option("--images", help="Folder of images named <id>.<ext> (uses id_1/id_2 columns).")
]
FoldsOpt = Annotated[int, typer.Option(min=2, help="Cross-validation folds.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for folds and initialisation.")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="Epochs per head fit.")]
HeadsOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Heads trained from different seeds, their logits averaged into one model: steadier across "
        "retrains, N times the training time (--fine-tune: one).",
    ),
]
CvSeedsOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Cross-validate with this many seeds (each its own folds, initialisations and photo draws); the "
        "model card lists each seed's figures and their mean ± sd. N times the CV time; the model is the same.",
    ),
]
LossOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Loss to train with; repeat to compare several by CV macro-F1 (cross_entropy, class_weighted, "
        "focal) \\[default: focal]."
    ),
]
FineTuneOpt = Annotated[
    bool,
    typer.Option(
        "--fine-tune", help="Also train the text encoder end to end with the head (GPU recommended; slow on CPU)."
    ),
]
FineTuneEpochsOpt = Annotated[int, typer.Option(min=1, help="Epochs of end-to-end training with --fine-tune.")]
PairFeaturesOpt = Annotated[
    bool,
    typer.Option(
        "--pair-features/--no-pair-features",
        help="Also feed the head lexical overlap features of the two texts (shared words, numbers, @mentions).",
    ),
]
PhotosOpt = Annotated[
    Path | None,
    typer.Option(
        "--photos",
        help="Folder of real photos unrelated to the pairs. A quarter is held out to measure how often attaching "
        "unrelated photos changes a label; the rest (with crops) are attached to training rows, labels unchanged, "
        "so the head learns that a present image is no evidence. Without it, images are used only when at least "
        "25% of training rows have their own.",
    ),
]
TextEncoderOpt = Annotated[
    str,
    typer.Option(
        "--text-encoder",
        help="Text encoder: a registered name (minilm-l6-v2), a keras-hub preset name (bert_base_en_uncased; "
        "needs the hub reachable) or a local preset folder (keras-hub or Hugging Face format).",
    ),
]
ImageEncoderOpt = Annotated[
    str,
    typer.Option(
        "--image-encoder",
        help="Image encoder: a registered name (mobilenet-v2-imagenet), a keras-hub preset name "
        "(resnet_50_imagenet) or a local preset folder.",
    ),
]
BaseOpt = Annotated[
    str | None,
    typer.Option(
        help="Extend this model (a model directory, or 'default' for the shipped one) with DATA's labels: rows "
        "in its domain retrain its main head together with its kept training rows, the others refit its second "
        "head (the main head is then kept as it is). Its encoders and pair features are used.",
    ),
]
NewWeightOpt = Annotated[
    int, typer.Option(min=1, help="With --base: how many times each new labelled row counts, in either head.")
]
OutOfDomainPairsOpt = Annotated[
    str | None,
    typer.Option(
        "--out-of-domain-pairs",
        help="Labelled pairs unlike DATA (e.g. plain-language sentences; the shipped model used "
        "sample_data/plain_pairs.csv) for the second head: rows more like these pairs than like DATA's are "
        "labelled by it, from the texts alone.",
    ),
]

# report
ScoredArg = Annotated[
    str,
    typer.Argument(
        metavar="SCORED",
        help="What `mmscore score` wrote: a Parquet file or an --output-dir folder, a path or a URI.",
    ),
]
GoldOpt = Annotated[str, typer.Option(help="Column holding gold labels, when present.")]
JsonOutOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
PlotOpt = Annotated[
    Path | None,
    typer.Option(help="Also write a PNG: confidence histogram; with gold labels, confusion and reliability."),
]
ReviewOpt = Annotated[
    Path | None,
    typer.Option(
        help="Write the rows a person should look at (.csv or .parquet): ids, texts, image references, "
        "label, probabilities, least confident first."
    ),
]
BelowOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Low-confidence threshold on the max probability, for the report and --review "
        f"(default {defaults.LOW_CONFIDENCE:g}; with --top or --out-of-domain and no --below: no threshold).",
    ),
]
TopOpt = Annotated[int | None, typer.Option(min=1, help="With --review: at most the N least confident rows.")]
OutOfDomainOpt = Annotated[
    bool,
    typer.Option(
        "--out-of-domain",
        help="With --review: only rows flagged out of the model's domain (in_domain false); with no --below "
        "and no --top, all of them.",
    ),
]
