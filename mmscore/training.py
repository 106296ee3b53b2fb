"""Train the entailment head on frozen, cached encoder embeddings, with honest cross-validation.

Flow: read labelled pairs -> find images -> embed (cached) -> k-fold CV per loss, decision offsets
cross-fitted on out-of-fold predictions -> pick the loss by macro-F1 -> fit on all rows -> save.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mmscore import defaults, statuses
from mmscore.errors import InputError, OutputError, first_line, require_folder
from mmscore.images.fetcher import ImageFetcher, image_reference
from mmscore.io.atomic_write import atomic_path
from mmscore.io.pairs_reader import ROW_NOTE, open_pairs
from mmscore.labels import LABEL_INDEX, LABELS
from mmscore.metrics import calibration, class_metrics, fit_temperature, macro_f1, softmax
from mmscore.model.card import HEAD_FILE, TEXT_WEIGHTS_FILE, ModelCard
from mmscore.model.domain import DOMAIN_FILE, fit_domain_forms, text_form
from mmscore.model.embedding_cache import EmbeddingCache, cached_encode, content_key
from mmscore.model.head_inputs import head_inputs
from mmscore.model.pair_features import KNOWN as KNOWN_PAIR_FEATURES
from mmscore.model.pair_features import NAME as LEXICAL_FEATURES
from mmscore.model.pair_features import pair_features
from mmscore.model.training_rows import TRAINING_ROWS_FILE, TrainingRows
from mmscore.scoring.chunks import load_images
from mmscore.unrelated_photos import PhotoSets, attach_unrelated, load_photo_sets, probe_photos, without_images
from mmscore.version import __version__

LOSSES = ("cross_entropy", "class_weighted", "focal")
# Without unrelated photos to augment with, the image path is used only when at least this share of
# training rows has an image of its own: then a present image is common, not a mark of a few labels.
MIN_IMAGE_ROW_SHARE = 0.25
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    losses: tuple[str, ...] = (defaults.LOSS,)
    folds: int = defaults.FOLDS
    seed: int = defaults.SEED
    epochs: int = defaults.EPOCHS
    batch_size: int = 64
    learning_rate: float = 1e-3
    sequence_length: int = 128
    text_encoder: str = defaults.TEXT_ENCODER
    image_encoder: str = defaults.IMAGE_ENCODER
    fine_tune: bool = False  # also train the text encoder, end to end with the head
    fine_tune_epochs: int = defaults.FINE_TUNE_EPOCHS
    fine_tune_learning_rate: float = 2e-5
    fine_tune_batch_size: int = 16
    heads: int = defaults.HEADS  # heads from different seeds, their logits averaged (one saved model)
    pair_features: str = LEXICAL_FEATURES  # lexical overlap features as a head input; "" for none

    def __post_init__(self):
        unknown = set(self.losses) - set(LOSSES)
        if unknown or not self.losses:
            raise ValueError(f"unknown loss(es) {sorted(unknown)}; choose from {', '.join(LOSSES)}")
        if self.folds < 2:
            raise ValueError("folds must be at least 2")
        if self.heads < 1:
            raise ValueError("heads must be at least 1")
        if self.pair_features and self.pair_features not in KNOWN_PAIR_FEATURES:
            raise ValueError(f"unknown pair features {self.pair_features!r}; known: {', '.join(KNOWN_PAIR_FEATURES)}")


# Head steps are tiny: one graph call per step was mostly Python and dispatch overhead. Running many steps
# per call trains on the same batches in the same order, about twice as fast on a 2-core CPU.
STEPS_PER_EXECUTION = 32
PAIR_ARRAYS = ("text_1", "text_2", "image_1", "image_2", "image_mask")


@dataclass
class PairEmbeddings:
    text_1: np.ndarray
    text_2: np.ndarray
    image_1: np.ndarray
    image_2: np.ndarray
    image_mask: np.ndarray
    image_statuses: Counter = field(default_factory=Counter)
    encoded: Counter = field(default_factory=Counter)  # encoder calls this run, per modality
    pair_features: np.ndarray | None = None  # lexical features of the two texts, when the head takes them

    @classmethod
    def concatenate(cls, parts: list[PairEmbeddings]) -> PairEmbeddings:
        """The rows of ``parts`` one after another (statuses and encoder counts are not carried)."""
        arrays = [np.concatenate([getattr(p, name) for p in parts]) for name in PAIR_ARRAYS]
        features = None if parts[0].pair_features is None else np.concatenate([p.pair_features for p in parts])
        return cls(*arrays, pair_features=features)

    def head_inputs(self, rows=slice(None)) -> dict[str, np.ndarray]:
        lexical = None if self.pair_features is None else self.pair_features[rows]
        return head_inputs(*(getattr(self, name)[rows] for name in PAIR_ARRAYS), lexical)


@dataclass
class TrainResult:
    card: ModelCard
    per_loss: dict[str, dict]
    chosen_loss: str
    skipped_rows: int
    image_statuses: Counter
    encoded: Counter
    seconds: float = 0.0


def read_labelled_pairs(path: str | Path) -> tuple[pd.DataFrame, int]:
    """Labelled pairs as strings (ids intact), read by the scoring reader; rows with an empty text, an empty
    label (a review queue's rows nobody labelled) or a malformed CSV record are dropped and counted."""
    source = open_pairs(path)  # same checks as scoring: file type, readability, text columns
    if "label" not in source.schema.names:
        raise InputError(f"{path}: missing required column(s) label")
    table = pa.concat_tables(source.chunks(1 << 16), promote_options="default") if source.num_rows != 0 else None
    df = table.to_pandas() if table is not None else pd.DataFrame(columns=source.schema.names)
    malformed = df.pop(ROW_NOTE).eq(statuses.MALFORMED_ROW) if ROW_NOTE in df.columns else pd.Series(False, df.index)
    unlabelled = df["label"].isna() | df["label"].astype(str).str.strip().eq("")
    df = df[~unlabelled]  # a review queue's rows nobody labelled yet
    unknown = sorted(set(df["label"].astype(str)) - set(LABELS))
    if unknown:
        raise InputError(f"{path}: unknown label value(s) {unknown}; expected {', '.join(LABELS)}")
    texts_ok = df["text_1"].fillna("").str.strip().ne("") & df["text_2"].fillna("").str.strip().ne("")
    keep = texts_ok & ~malformed[~unlabelled]
    return df[keep].reset_index(drop=True), int((~keep).sum() + unlabelled.sum())


def image_refs(df: pd.DataFrame, side: int, images_dir: Path | None) -> list[str | None]:
    """Where each row's image comes from: ``<images_dir>/<id>.<ext>`` when a dir is given, else the column."""
    if images_dir is None:
        column = f"image_{side}"
        return list(df[column]) if column in df.columns else [None] * len(df)
    ids = df[f"id_{side}"] if f"id_{side}" in df.columns else [None] * len(df)
    present = {p.stem: p for p in Path(images_dir).resolve().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    return [str(present[str(i)]) if i is not None and str(i) in present else None for i in ids]


def embed_pairs(
    df: pd.DataFrame,
    images_dir: Path | None,
    fetcher: ImageFetcher,
    text_encoder,
    image_encoder,
    cache_root: Path | None = None,
) -> PairEmbeddings:
    """Text and image embeddings for every row, computed once and cached by content hash."""
    text_cache = EmbeddingCache(
        f"{text_encoder.name}-{text_encoder.version}-len{text_encoder.sequence_length}", cache_root
    )
    texts = list(df["text_1"]) + list(df["text_2"])
    text_vectors, text_calls = cached_encode(
        text_cache, [content_key(t) for t in texts], texts, text_encoder.encode, text_encoder.dim
    )
    n = len(df)
    image_cache = EmbeddingCache(f"{image_encoder.name}-{image_encoder.version}", cache_root)
    statuses: Counter = Counter()
    keys, pixels, rows = [], [], []
    refs = {side: [image_reference(r) for r in image_refs(df, side, images_dir)] for side in (1, 2)}
    # Fetched and decoded by the scoring stage itself (same statuses, same pixels, busy hosts deferred).
    with ThreadPoolExecutor(fetcher.pool_size, thread_name_prefix="mmscore-fetch") as pool:
        loaded = load_images(refs[1] + refs[2], fetcher, pool, image_encoder.image_size)
    for side in (1, 2):
        for row, ref in enumerate(refs[side]):
            decoded, status = loaded[ref]
            statuses[status] += 1
            if decoded is not None:
                keys.append(content_key(decoded.tobytes()))
                pixels.append(decoded)
                rows.append((side, row))
    image_vectors, image_calls = cached_encode(image_cache, keys, pixels, image_encoder.encode, image_encoder.dim)
    images = np.zeros((2, n, image_encoder.dim), np.float32)
    mask = np.zeros((n, 2), np.float32)
    for (side, row), vector in zip(rows, image_vectors, strict=True):
        images[side - 1, row] = vector
        mask[row, side - 1] = 1.0
    return PairEmbeddings(
        text_vectors[:n],
        text_vectors[n:],
        images[0],
        images[1],
        mask,
        statuses,
        Counter(text=text_calls, image=image_calls),
    )


def _loss_and_weights(loss: str, y: np.ndarray):
    import keras

    if loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(gamma=2.0, from_logits=True), None
    weights = None
    if loss == "class_weighted":
        counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
        weights = {i: float(len(y) / (len(LABELS) * max(c, 1))) for i, c in enumerate(counts)}
    return keras.losses.CategoricalCrossentropy(from_logits=True), weights


def fit_head(
    emb: PairEmbeddings,
    y: np.ndarray,
    rows: np.ndarray,
    loss: str,
    options: TrainOptions,
    seed: int,
    epochs: int | None = None,
    name: str = "entailment_head",
):
    """A fresh head trained on ``rows`` for ``epochs`` (default: the options')."""
    import keras

    from mmscore.model.entailment_head import build_entailment_head

    keras.utils.set_random_seed(seed)
    pair_dim = 0 if emb.pair_features is None else emb.pair_features.shape[1]
    dims = (emb.text_1.shape[1], emb.image_1.shape[1])
    head = build_entailment_head(*dims, pair_feature_dim=pair_dim, seed=seed, name=name)
    if pair_dim:  # the features' scale is learned from the training rows only
        head.get_layer("pair_features_norm").adapt(emb.pair_features[rows])
    _compile_and_fit(
        head,
        emb.head_inputs(rows),
        y[rows],
        loss,
        learning_rate=options.learning_rate,
        weight_decay=1e-4,
        epochs=epochs or options.epochs,
        batch_size=options.batch_size,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return head


def _compile_and_fit(
    model, inputs, y: np.ndarray, loss: str, *, learning_rate, weight_decay, epochs, batch_size, **compile_options
):
    """Train ``model`` on ``inputs`` against labels ``y`` with ``loss`` (class weights when the loss asks for them)."""
    import keras

    loss_fn, class_weight = _loss_and_weights(loss, y)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay), loss=loss_fn, **compile_options
    )
    model.fit(
        inputs,
        np.eye(len(LABELS), dtype=np.float32)[y],
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        shuffle=True,
        verbose=0,
    )


HEAD_SEED_STRIDE = 7_919  # the j-th head of an ensemble starts from seed + j * stride (never another fold's seed)


def fit_heads(training_set: tuple, loss: str, options: TrainOptions, seed: int, epochs: int):
    """``options.heads`` heads on the same rows from different seeds, as one model averaging their logits."""
    from mmscore.model.entailment_head import average_heads

    count = 1 if options.fine_tune else options.heads  # the fine-tuned encoder is trained with one head
    names = ["entailment_head"] if count == 1 else [f"entailment_head_{j}" for j in range(count)]
    heads = [
        _weights_only(fit_head(*training_set, loss, options, seed + j * HEAD_SEED_STRIDE, epochs, name=name))
        for j, name in enumerate(names)
    ]
    return average_heads(heads) if len(heads) > 1 else heads[0]


def _weights_only(head):
    """The trained head as a fresh, never-compiled model with its weights: a saved model then holds no
    optimizer state (a third of the size)."""
    from mmscore.model.entailment_head import build_entailment_head

    dims = {t.name: int(t.shape[-1]) for t in head.inputs}
    fresh = build_entailment_head(
        dims["text_1"], dims["image_1"], pair_feature_dim=dims.get("pair_features", 0), name=head.name
    )
    fresh.set_weights(head.get_weights())
    # Normalization computes its scale from the adapted statistics once ("finalize"); loading a file does it too
    if "pair_features" in dims:
        fresh.get_layer("pair_features_norm").finalize_state()
    return fresh


def head_logits(head, emb: PairEmbeddings, rows=slice(None)) -> np.ndarray:
    return np.asarray(head.predict(emb.head_inputs(rows), batch_size=1024, verbose=0))


class FineTuner:
    """Fine-tunes the text encoder with a head, each time from the pretrained weights (so folds stay independent)."""

    def __init__(self, text_encoder, text_1: list[str], text_2: list[str]):
        from mmscore.encoders.pair_tokens import PairTokens

        self.text_encoder = text_encoder
        if getattr(text_encoder, "pooling", "mean") != "pooled":  # an unused pooler would only collect noise
            for layer in text_encoder.backbone.layers:
                layer.trainable = layer.trainable and layer.name != "pooled_dense"
        self.tokens = PairTokens.of(text_encoder, text_1, text_2)
        self.pretrained = text_encoder.backbone.get_weights()

    def train(self, head, emb: PairEmbeddings, y: np.ndarray, rows: np.ndarray, loss: str, options: TrainOptions):
        """The end-to-end model after fine-tuning on ``rows``; ``head`` and the encoder are updated in place."""
        from mmscore.model.fine_tuning import end_to_end_model, model_inputs

        self.text_encoder.backbone.set_weights(self.pretrained)
        model = end_to_end_model(self.text_encoder, head, emb.image_1.shape[1])
        _compile_and_fit(
            model,
            model_inputs(self.tokens, emb, rows),
            y[rows],
            loss,
            learning_rate=options.fine_tune_learning_rate,
            weight_decay=1e-2,
            epochs=options.fine_tune_epochs,
            batch_size=options.fine_tune_batch_size,
            jit_compile=False,  # XLA compile time dwarfs these small runs
        )
        return model

    def logits(self, model, emb: PairEmbeddings, rows: np.ndarray) -> np.ndarray:
        from mmscore.model.fine_tuning import model_inputs

        inputs = model_inputs(self.tokens, emb, rows)
        # Plain calls: tracing a predict function for BERT costs more than these few batches.
        batches = [model([a[lo : lo + 64] for a in inputs], training=False) for lo in range(0, len(rows), 64)]
        return np.concatenate([np.asarray(b) for b in batches])


def tune_offsets(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class logit offsets (NoEntailment fixed at 0) that maximise macro-F1 on ``logits``."""
    grid = np.arange(-2.0, 4.01, 0.25)
    best, best_score = np.zeros(len(LABELS)), -1.0
    base = LABEL_INDEX["NoEntailment"]
    others = [i for i in range(len(LABELS)) if i != base]
    for a in grid:
        for b in grid:
            offsets = np.zeros(len(LABELS))
            offsets[others] = (a, b)
            score = macro_f1(y, (logits + offsets).argmax(1))
            # ties go to the smaller shift: less distortion of the probabilities
            if score > best_score + 1e-9 or (
                abs(score - best_score) <= 1e-9 and np.abs(offsets).sum() < np.abs(best).sum()
            ):
                best, best_score = offsets, score
    return best


@dataclass
class PhotoPlan:
    """How images enter training: hidden entirely (the gate), or attached unrelated photos plus a probe."""

    uses_images: bool
    photos: PhotoSets | None = None

    def training_set(self, emb: PairEmbeddings, y: np.ndarray, rows: np.ndarray, seed: int):
        """What a head trains on: ``(embeddings, labels, rows)``. With photos, :data:`AUGMENTED_COPIES` copies of
        the rows, each with its own random photos, so the head sees many photo/label pairings, not one."""
        if not self.augmented:
            return self.scoring_view(emb), y, rows
        photos = self.photos.augmentation
        copies = [attach_unrelated(emb, rows, photos, seed * 100 + i) for i in range(AUGMENTED_COPIES)]
        n = len(y)
        stacked = PairEmbeddings.concatenate(copies)
        return stacked, np.tile(y, len(copies)), np.concatenate([rows + i * n for i in range(len(copies))])

    def epochs(self, options: TrainOptions) -> int:
        """Epochs over :meth:`training_set`: fewer when it holds copies, so the gradient steps stay the same."""
        return max(1, round(options.epochs / (AUGMENTED_COPIES if self.augmented else 1)))

    @property
    def augmented(self) -> bool:
        return self.uses_images and self.photos is not None

    def scoring_view(self, emb: PairEmbeddings) -> PairEmbeddings:
        return emb if self.uses_images else without_images(emb)

    def probes(self, emb: PairEmbeddings, rows: np.ndarray, seed: int) -> dict[str, PairEmbeddings]:
        """The validation rows with unrelated probe photos attached (never seen in training)."""
        if self.photos is None:
            return {}
        return {
            name: self.scoring_view(probe_photos(emb, rows, self.photos.probe, seed, same=same))
            for name, same in PROBES.items()
        }


AUGMENTED_COPIES = 4  # epochs are divided by this: the same number of gradient steps as without copies
PROBES = {"unrelated_photos": False, "same_photo_both_posts": True}


def cross_validate(
    emb: PairEmbeddings,
    y: np.ndarray,
    loss: str,
    options: TrainOptions,
    tuner: FineTuner | None = None,
    plan: PhotoPlan | None = None,
    layout: RowLayout | None = None,
) -> tuple[dict, np.ndarray]:
    """Stratified k-fold metrics with cross-fitted offsets and temperature; also returns the out-of-fold logits.

    With photos in ``plan``, every fold's validation rows are scored again with unrelated probe photos
    attached, and the share of labels that change is reported per fold and overall.
    """
    plan = plan or PhotoPlan(uses_images=True)
    layout = layout or RowLayout.stratified(y, options)
    folds = layout.folds()
    scored = plan.scoring_view(emb)
    oof = np.zeros((len(y), len(LABELS)), np.float32)
    probe_oof: dict[str, np.ndarray] = {}
    for k, (train_rows, test_rows) in enumerate(folds):
        seed = options.seed + k
        trained_on = layout.training_rows(train_rows)
        head = fit_heads(plan.training_set(emb, y, trained_on, seed), loss, options, seed, plan.epochs(options))
        model = head if tuner is None else tuner.train(head, scored, y, train_rows, loss, options)
        logits = head_logits if tuner is None else tuner.logits
        oof[test_rows] = logits(model, scored, test_rows)
        for name, probed in plan.probes(emb, test_rows, PROBE_SEED + seed).items():
            probe_oof.setdefault(name, np.zeros_like(oof))[test_rows] = logits(model, probed, test_rows)
    return _cross_fitted_metrics(oof, probe_oof, y, folds, layout.groups), oof


def cv_fold_ids(y: np.ndarray, options: TrainOptions) -> np.ndarray:
    """Each row's stratified fold: the folds every cross-fitted step of one training run shares."""
    from sklearn.model_selection import StratifiedKFold

    ids = np.zeros(len(y), np.int64)
    for k, (_train, test) in enumerate(
        StratifiedKFold(options.folds, shuffle=True, random_state=options.seed).split(y, y)
    ):
        ids[test] = k
    return ids


@dataclass(frozen=True)
class RowLayout:
    """Which fold each row is validated in, how many times it is repeated when trained on (a user's new rows
    weigh more than the base model's many), and groups of rows whose metrics are reported apart."""

    fold_ids: np.ndarray
    repeat: np.ndarray | None = None
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # name -> boolean row mask

    @classmethod
    def stratified(cls, y: np.ndarray, options: TrainOptions) -> RowLayout:
        return cls(cv_fold_ids(y, options))

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        everything = np.arange(len(self.fold_ids))
        return [(everything[self.fold_ids != k], everything[self.fold_ids == k]) for k in np.unique(self.fold_ids)]

    def training_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.repeat is None else np.repeat(rows, self.repeat[rows])


def spread_over_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold id per row, each class dealt round-robin over the folds in a seeded order (works for any count)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros(len(y), np.int64)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        ids[rows] = np.arange(len(rows)) % folds
    return ids


PROBE_SEED = 1_000  # the probe's photo assignment never coincides with augmentation's


def _cross_fitted_metrics(oof: np.ndarray, probe_oof: dict, y: np.ndarray, folds: list, groups=None) -> dict:
    """Metrics of out-of-fold logits where each fold's offsets and temperature come only from the other folds."""
    pred = np.zeros(len(y), np.int64)
    before, after = np.zeros(oof.shape), np.zeros(oof.shape)
    probe_pred = {name: np.zeros(len(y), np.int64) for name in probe_oof}
    per_fold = []
    for k, (_train_rows, test_rows) in enumerate(folds):
        others = np.setdiff1d(np.arange(len(y)), test_rows)
        offsets = tune_offsets(oof[others], y[others])
        temperature = fit_temperature(oof[others] + offsets, y[others])
        shifted = oof[test_rows] + offsets
        pred[test_rows] = shifted.argmax(1)
        before[test_rows], after[test_rows] = softmax(shifted), softmax(shifted / temperature)
        fold = {
            "fold": k,
            "rows": int(len(test_rows)),
            "macro_f1": macro_f1(y[test_rows], pred[test_rows]),
            "offsets": [float(x) for x in offsets],
            "temperature": temperature,
            "calibration_before": _brief(calibration(before[test_rows], y[test_rows])),
            "calibration_after": _brief(calibration(after[test_rows], y[test_rows])),
        }
        for name, logits in probe_oof.items():
            probe_pred[name][test_rows] = (logits[test_rows] + offsets).argmax(1)
            fold[name] = _robustness(y[test_rows], pred[test_rows], probe_pred[name][test_rows])
        per_fold.append(fold)
    metrics = class_metrics(y, pred)
    metrics["without_offsets"] = class_metrics(y, oof.argmax(1))
    metrics["calibration"] = {"before": calibration(before, y), "after": calibration(after, y)}
    metrics["robustness"] = {name: _robustness(y, pred, p) for name, p in probe_pred.items()}
    metrics["per_fold"] = per_fold
    metrics["groups"] = {name: class_metrics(y[mask], pred[mask]) for name, mask in (groups or {}).items()}
    return metrics


def _brief(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "reliability"}


def _robustness(y: np.ndarray, pred: np.ndarray, probed: np.ndarray) -> dict:
    """Share of labels that change when photos are attached, and what that does to macro-F1."""
    probed_f1 = macro_f1(y, probed)
    return {
        "flip_rate": float((pred != probed).mean()),
        "macro_f1": probed_f1,
        "macro_f1_change": probed_f1 - macro_f1(y, pred),
    }


def image_rows(emb: PairEmbeddings) -> int:
    """Training rows with at least one decoded image of their own."""
    return int((emb.image_mask.sum(1) > 0).sum())


def photo_plan(emb: PairEmbeddings, photos: Path | None, image_encoder, cache_root, progress: Progress) -> PhotoPlan:
    """Augment with unrelated photos when given; else use images only if enough rows carry their own.

    Below :data:`MIN_IMAGE_ROW_SHARE` and without photos, the image path is off: a head fitted on a
    handful of images learns "an image is present" as a label (8 of 1,260 rows turned 65 % of labels).
    """
    if photos is not None:
        progress(f"embedding unrelated photos from {photos} (cached)")
        return PhotoPlan(True, load_photo_sets(photos, image_encoder, cache_root))
    return PhotoPlan(image_rows(emb) >= MIN_IMAGE_ROW_SHARE * len(emb.text_1))


@contextmanager
def readable_twice(data: str | Path) -> Iterator[str | Path]:
    """``data`` as something that can be read twice (rows, then bytes for the card's hash): stdin (``-``) is
    spooled to a temporary CSV file first; anything else is itself."""
    if str(data) != "-":
        yield data
        return
    with tempfile.TemporaryDirectory(prefix="mmscore-train-") as folder:
        spooled = Path(folder) / "stdin.csv"
        with spooled.open("wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        yield spooled


def data_sha256(path: str | Path) -> str:
    """Hash of the training data's bytes: its one file, or its files in reading order (folder, glob, URI)."""
    from mmscore.io.pairs_reader import input_files

    digest = hashlib.sha256()
    for f in input_files(path):
        with f.open() as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def save_model(out_dir: Path, head, card: ModelCard, tuned_text_encoder=None, domain=None, rows=None) -> None:
    """Write the model directory, each file atomically; the card goes last, so a half-written model never loads.
    ``domain``: the in-domain reference (:mod:`mmscore.model.domain`); ``rows``: the training rows a later
    ``--base`` extension trains on (:mod:`mmscore.model.training_rows`); each written beside the head."""
    try:
        with atomic_path(out_dir / HEAD_FILE) as tmp:
            head.save(tmp)
        for name, content in ((DOMAIN_FILE, domain), (TRAINING_ROWS_FILE, rows)):
            (out_dir / name).unlink(missing_ok=True)
            if content is not None:
                with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as handle:
                    content.save(handle)
        (out_dir / TEXT_WEIGHTS_FILE).unlink(missing_ok=True)
        if tuned_text_encoder is not None:
            with atomic_path(out_dir / TEXT_WEIGHTS_FILE) as tmp:
                tuned_text_encoder.backbone.save_weights(tmp)
        card.save(out_dir)
    except OSError as exc:
        raise OutputError(f"cannot write the model to {out_dir}: {exc.strerror or first_line(exc)}") from exc


def labels_of(df: pd.DataFrame, data: str | Path, folds: int) -> np.ndarray:
    """Label indices, or :class:`InputError` when a class has fewer rows than there are folds."""
    y = np.array([LABEL_INDEX[v] for v in df["label"]], np.int64)
    counts = np.bincount(y, minlength=len(LABELS))
    if (counts < folds).any():
        short = [f"{LABELS[i]} ({c})" for i, c in enumerate(counts) if c < folds]
        raise InputError(f"{data}: fewer than {folds} examples of {', '.join(short)} for {folds}-fold CV")
    return y


def compare_losses(emb, y, options: TrainOptions, tuner, plan: PhotoPlan, progress: Progress, layout=None):
    """Cross-validate each loss: ``(metrics per loss, out-of-fold logits per loss, the best loss by macro-F1)``."""
    kind = "fine-tuning" if tuner else "frozen encoders"
    per_loss, oofs = {}, {}
    for loss in options.losses:
        progress(f"{options.folds}-fold cross-validation ({kind}), loss={loss}")
        per_loss[loss], oofs[loss] = cross_validate(emb, y, loss, options, tuner, plan, layout)
    return per_loss, oofs, max(options.losses, key=lambda name: per_loss[name]["macro_f1"])


def fit_final(emb, y, loss: str, options: TrainOptions, tuner, plan: PhotoPlan, progress: Progress, layout=None):
    """The head (and, fine-tuning, the text encoder) trained on every row."""
    progress(f"fitting the final model on all rows ({'fine-tuning' if tuner else 'frozen encoders'}), loss={loss}")
    everything = np.arange(len(y))
    trained_on = layout.training_rows(everything) if layout else everything
    rows = plan.training_set(emb, y, trained_on, options.seed)
    head = fit_heads(rows, loss, options, options.seed, plan.epochs(options))
    if tuner:
        tuner.train(head, plan.scoring_view(emb), y, everything, loss, options)
    return head


def model_card(text, image, options, data_hash: str, emb, plan: PhotoPlan, chosen, per_loss, oof, y, tuned):
    """The card of a model trained with ``chosen``: offsets and temperature fitted on its out-of-fold logits."""
    offsets = tune_offsets(oof, y)
    return ModelCard(
        text_encoder=text.name,
        image_encoder=image.name,
        encoder_versions={text.name: text.version, image.name: image.version},
        sequence_length=options.sequence_length,
        image_size=image.image_size,
        decision_offsets=[float(x) for x in offsets],
        temperature=fit_temperature(oof + offsets, y),
        loss=chosen,
        training_data_sha256=data_hash,
        training_rows=len(y),
        image_rows=image_rows(emb),
        uses_images=plan.uses_images,
        photo_augmentation=plan.photos.card_facts() if plan.photos else {},
        cv_metrics={"folds": options.folds, "seed": options.seed, "chosen": chosen, "per_loss": per_loss},
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        mmscore_version=__version__,
        notes=f"images found: {int(emb.image_mask.sum())} of {2 * len(y)}",
        text_encoder_weights=TEXT_WEIGHTS_FILE if tuned else "",
        pair_features=options.pair_features,
        encoders={"text": text.describe(), "image": image.describe()},
    )


def kept_of_training(emb: PairEmbeddings, forms, y: np.ndarray, fold_ids: np.ndarray):
    """What a model keeps of its training pairs: ``(in-domain reference, training rows)``, both from the frozen
    text vectors, the texts' forms, the labels and the folds (never the texts)."""
    domain = fit_domain_forms(emb.text_1, emb.text_2, *forms, fold_ids)
    features = emb.pair_features if emb.pair_features is not None else np.zeros((len(y), 0), np.float32)
    rows = TrainingRows(emb.text_1, emb.text_2, emb.image_1, emb.image_2, emb.image_mask, features, *forms, y, fold_ids)
    return domain, rows


def base_model(base: str | Path) -> tuple[Path, ModelCard]:
    """The model to extend (``default``: the shipped one) and its card, checked to be extendable (one-line
    errors); its training rows are read once, when training starts."""
    from mmscore.model.predictor import DEFAULT_MODEL_DIR

    directory = DEFAULT_MODEL_DIR if str(base) == "default" else Path(base)
    card = ModelCard.load(directory)
    if card.text_encoder_weights:
        raise InputError(f"{base}: a model with a fine-tuned text encoder cannot be extended; retrain it")
    if not (directory / TRAINING_ROWS_FILE).is_file():
        raise InputError(
            f"{base}: keeps no training rows ({TRAINING_ROWS_FILE}): it was trained before models could be "
            "extended; retrain it with this version"
        )
    return directory, card


def _extended(rows: TrainingRows, emb: PairEmbeddings, y, forms, options: TrainOptions, new_weight: int):
    """The base model's rows followed by the new ones: embeddings, labels, text forms, and the layout (base rows
    keep their folds; new rows are dealt over the same folds and repeated ``new_weight`` times in training)."""
    base = PairEmbeddings(rows.text_1, rows.text_2, rows.image_1, rows.image_2, rows.image_mask)
    base.pair_features = rows.pair_features if emb.pair_features is not None else None
    combined = PairEmbeddings.concatenate([base, emb])
    n_base, n_new = len(rows), len(y)
    folds = int(rows.folds.max()) + 1
    fold_ids = np.concatenate([rows.folds, spread_over_folds(y, folds, options.seed)])
    repeat = np.concatenate([np.ones(n_base, np.int64), np.full(n_new, new_weight, np.int64)])
    is_new = np.arange(n_base + n_new) >= n_base
    layout = RowLayout(fold_ids, repeat, {"base rows": ~is_new, "new rows": is_new})
    forms = tuple(np.concatenate([old, new]) for old, new in zip((rows.form_1, rows.form_2), forms, strict=True))
    return combined, np.concatenate([rows.labels, y]), forms, layout


def train_model(
    data: str | Path,
    out_dir: Path,
    fetcher: ImageFetcher,
    images_dir: Path | None = None,
    options: TrainOptions = TrainOptions(),
    progress: Progress = lambda _msg: None,
    cache_root: Path | None = None,
    photos: Path | None = None,
    base: str | Path | None = None,
    new_weight: int = defaults.NEW_WEIGHT,
) -> TrainResult:
    """The whole recipe; writes ``head.keras``, ``model_card.json``, the in-domain reference and the training
    rows into ``out_dir``.

    ``data`` is anything scoring reads: a CSV/Parquet file, a folder or glob of them, an object-store URI, or
    ``-`` (CSV on stdin, spooled to a temporary file: the rows are read, then hashed for the card).
    ``photos`` is a folder of real photos unrelated to the pairs (see :mod:`mmscore.unrelated_photos`).
    ``base``: a model directory (or ``default``) whose training rows are trained on together with ``data``'s,
    each new row repeated ``new_weight`` times; its encoders and pair features are the new model's.
    """
    import time

    from mmscore.encoders import registry

    started = time.perf_counter()
    with readable_twice(data) as data:
        df, skipped = read_labelled_pairs(data)
        data_hash = data_sha256(data)
    base_dir, base_card = base_model(base) if base is not None else (None, None)
    base_rows = TrainingRows.load(base_dir / TRAINING_ROWS_FILE) if base_dir else None
    y = labels_of(df, data, options.folds if base_rows is None else 1)
    progress(f"{len(df)} pairs ({skipped} skipped for empty text or label); loading encoders")
    text = registry.text_encoder(options.text_encoder, options.sequence_length)
    image = registry.image_encoder(options.image_encoder)
    if base_card:  # new rows must be embedded exactly as the base rows were
        base_card.check_encoder("text", text)
        base_card.check_encoder("image", image)
    progress("embedding texts and images (cached)")
    emb = new_emb = embed_pairs(df, images_dir, fetcher, text, image, cache_root)
    if options.pair_features:
        emb.pair_features = pair_features(df["text_1"], df["text_2"], options.pair_features)
    forms = (text_form(list(df["text_1"])), text_form(list(df["text_2"])))
    layout = RowLayout.stratified(y, options)
    if base_rows is not None:
        emb, y, forms, layout = _extended(base_rows, emb, y, forms, options, new_weight)
    plan = photo_plan(emb, photos, image, cache_root, progress)
    tuner = None
    if options.fine_tune:  # a private copy of the encoder: the shared one keeps its pretrained weights
        tuned = registry.build_text_encoder(options.text_encoder, options.sequence_length)
        tuner = FineTuner(tuned, list(df["text_1"]), list(df["text_2"]))
    per_loss, oofs, chosen = compare_losses(emb, y, options, tuner, plan, progress, layout)
    head = fit_final(emb, y, chosen, options, tuner, plan, progress, layout)
    if base_card:
        lineage = {"base_model": base_card.model_id(), "base_dir": str(base_dir), "new_data_sha256": data_hash}
        lineage.update(base_rows=len(base_rows), new_rows=len(df), new_weight=new_weight)
        data_hash = hashlib.sha256(f"{base_card.training_data_sha256}+{data_hash}".encode()).hexdigest()
    card = model_card(text, image, options, data_hash, emb, plan, chosen, per_loss, oofs[chosen], y, tuner is not None)
    card.base = lineage if base_card else {}
    # a fine-tuned encoder places texts elsewhere than the frozen vectors the reference and rows are made of
    domain, rows = None, None
    if not tuner:
        progress("fitting the in-domain reference on held-out folds")
        domain, rows = kept_of_training(emb, forms, y, layout.fold_ids)
    card.domain = domain.card_facts(text.name) if domain is not None else {}
    save_model(Path(out_dir), head, card, tuner.text_encoder if tuner else None, domain, rows)
    elapsed = time.perf_counter() - started
    return TrainResult(card, per_loss, chosen, skipped, new_emb.image_statuses, new_emb.encoded, elapsed)


def train(
    data: str | Path,
    out: str | Path = defaults.MODEL_OUT,
    *,
    images: Path | None = None,
    folds: int = defaults.FOLDS,
    seed: int = defaults.SEED,
    epochs: int = defaults.EPOCHS,
    heads: int = defaults.HEADS,
    loss: list[str] | None = None,
    fine_tune: bool = False,
    fine_tune_epochs: int = defaults.FINE_TUNE_EPOCHS,
    pair_features: bool = True,
    photos: Path | None = None,
    text_encoder: str = defaults.TEXT_ENCODER,
    image_encoder: str = defaults.IMAGE_ENCODER,
    image_cache: Path | None = None,
    offline: bool = False,
    allow_private_urls: bool = False,
    image_root: Path | None = None,
    base: str | None = None,
    new_weight: int = defaults.NEW_WEIGHT,
    progress: Progress = lambda _msg: None,
) -> TrainResult:
    """``mmscore train`` as a function, every option a keyword with the CLI's name and default.

    ``data``: labelled pairs, anything scoring reads. ``images``: a folder of ``<id>.<ext>`` files (uses the
    ``id_*`` columns); otherwise ``image_*`` paths are read under ``image_root`` (default: where scoring would
    read them). ``loss``: losses to compare by CV macro-F1 (default: focal). ``photos``: real photos unrelated
    to the pairs, to teach the head that an attached photo is no evidence. ``base``: extend that model
    directory (``default``: the shipped model): train on its kept training rows and ``data``'s together, each new
    row repeated ``new_weight`` times; the base's encoders and pair features are used. Bad settings raise
    :class:`~mmscore.errors.InputError` before any work.
    """
    from mmscore.images.fetcher import build_fetcher
    from mmscore.io.pairs_reader import default_image_root

    for folder, option in ((images, "--images"), (photos, "--photos"), (image_root, "--image-root")):
        require_folder(folder, option)
    sequence_length = TrainOptions.sequence_length
    if base is not None:
        _, card = base_model(base)
        for kind, asked, default, kept in (
            ("text", text_encoder, defaults.TEXT_ENCODER, card.text_encoder),
            ("image", image_encoder, defaults.IMAGE_ENCODER, card.image_encoder),
        ):
            if asked not in (default, kept):
                raise InputError(f"--{kind}-encoder {asked} differs from the base model's {kept}")
        if fine_tune:
            raise InputError("--fine-tune cannot extend a base model (its rows are frozen-encoder vectors)")
        if new_weight < 1:
            raise InputError("--new-weight must be at least 1")
        text_encoder, image_encoder, sequence_length = card.text_encoder, card.image_encoder, card.sequence_length
        pair_features = bool(card.pair_features)
    try:
        options = TrainOptions(
            losses=tuple(loss) if loss else TrainOptions.losses,
            sequence_length=sequence_length,
            folds=folds,
            seed=seed,
            epochs=epochs,
            heads=heads,
            fine_tune=fine_tune,
            fine_tune_epochs=fine_tune_epochs,
            pair_features=LEXICAL_FEATURES if pair_features else "",
            text_encoder=text_encoder,
            image_encoder=image_encoder,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    root = image_root or images or default_image_root(data)
    fetcher = build_fetcher(image_cache, offline=offline, allow_private_urls=allow_private_urls, image_root=root)
    try:
        return train_model(
            data, Path(out), fetcher, images, options, progress, photos=photos, base=base, new_weight=new_weight
        )
    except ValueError as exc:  # settings the recipe refuses (e.g. more folds than rows)
        raise InputError(str(exc)) from exc
    finally:
        fetcher.close()
