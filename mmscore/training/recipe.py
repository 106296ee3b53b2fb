"""The whole recipe: ``train()`` (the CLI's options as keywords) and ``train_model()``; extending a base model."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import InitVar, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mmscore import defaults
from mmscore.errors import InputError, require_folder
from mmscore.images.fetcher import ImageFetcher
from mmscore.labels import LABEL_INDEX, LABELS
from mmscore.model.card import ModelCard
from mmscore.model.domain import load_domain, text_form
from mmscore.model.pair_features import NAME as LEXICAL_FEATURES
from mmscore.model.pair_reader import PAIR_READER_FILE, PairReader
from mmscore.model.preprocessor import PairPreprocessor
from mmscore.model.second_head import SecondHead, load_second_head, route
from mmscore.model.training_rows import TRAINING_ROWS_FILE, TrainingRows
from mmscore.training.card import (
    MainHeadFit,
    base_model,
    copy_model_files,
    data_sha256,
    kept_of_training,
    model_card,
    now,
    save_model,
)
from mmscore.training.cross_fitting import (
    RowLayout,
    compare_losses,
    cross_validate,
    over_seeds,
    seed_figures,
    spread_over_folds,
)
from mmscore.training.embeddings import PairEmbeddings, embed_pairs, read_labelled_pairs
from mmscore.training.head_fit import FineTuner, fit_heads
from mmscore.training.options import Progress, TrainOptions, TrainResult
from mmscore.training.probes import PhotoPlan, photo_plan
from mmscore.training.second_head import (
    fit_second_head,
    reader_facts,
    routing_metrics,
    second_head_facts,
    second_rows,
)


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


def labels_of(df: pd.DataFrame, data: str | Path, folds: int) -> np.ndarray:
    """Label indices, or :class:`InputError` when a class has fewer rows than there are folds."""
    y = np.array([LABEL_INDEX[v] for v in df["label"]], np.int64)
    counts = np.bincount(y, minlength=len(LABELS))
    if (counts < folds).any():
        short = [f"{LABELS[i]} ({c})" for i, c in enumerate(counts) if c < folds]
        raise InputError(f"{data}: fewer than {folds} examples of {', '.join(short)} for {folds}-fold CV")
    return y


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
    layout = RowLayout(fold_ids, repeat, {"base rows": ~is_new, "new rows": is_new}, calibrated=~is_new)
    forms = tuple(np.concatenate([old, new]) for old, new in zip((rows.form_1, rows.form_2), forms, strict=True))
    return combined, np.concatenate([rows.labels, y]), forms, layout


def second_head_parts(kept: SecondHead | None, pairs, embed, nli) -> list:
    """The second head's rows so far: the base model's own (``kept``, extending) and ``pairs`` (labelled pairs
    unlike the main data)."""
    parts = [kept.rows] if kept is not None else []
    if pairs is not None:
        extra, _skipped = read_labelled_pairs(pairs)
        parts.append(second_rows(extra, embed(extra), nli))
    return parts


def reader_file(base_dir: Path | None) -> Path:
    """The pair reader a trained model's second head reads with: its base's, else the shipped model's."""
    from mmscore.model.predictor import DEFAULT_MODEL_DIR

    if base_dir is not None and (Path(base_dir) / PAIR_READER_FILE).is_file():
        return Path(base_dir) / PAIR_READER_FILE
    return DEFAULT_MODEL_DIR / PAIR_READER_FILE


def lazy_reader(path: Path):
    """``nli(texts_1, texts_2)`` from the pair reader at ``path``, loaded on the first call only."""
    loaded = []

    def nli(texts_1, texts_2):
        if not loaded:
            loaded.append(PairReader.load(path))
        return loaded[0].probabilities(texts_1, texts_2)

    return nli


def outside_base(base_dir: Path, df: pd.DataFrame, emb: PairEmbeddings, second: SecondHead | None = None):
    """Which new rows the router sends to the base's second head (:func:`~mmscore.model.second_head.route`):
    they extend its second head, not its main head (all False for a base without a reference)."""
    reference = load_domain(base_dir)
    if reference is None:
        return np.zeros(len(df), bool)
    texts = list(df["text_1"]), list(df["text_2"])
    main_score, main_in_domain = reference.score(emb.text_1, emb.text_2, *texts)
    second = load_second_head(base_dir) if second is None else second
    if second is None:
        return route(main_score, main_in_domain)
    return second.takes(main_score, main_in_domain, emb.text_1, emb.text_2, *texts)


def _lineage(base_dir: Path, base_card: ModelCard, base_rows: int, new_hash: str, outside, weight: int) -> dict:
    """The card's ``base``: which model was extended, with what, and where the new rows went."""
    return {
        "base_model": base_card.model_id(),
        "base_dir": str(base_dir),
        "new_data_sha256": new_hash,
        "base_rows": base_rows,
        "new_rows": len(outside),
        "new_weight": weight,
        "new_rows_main_head": int((~outside).sum()),
        "new_rows_second_head": int(outside.sum()),
    }


def _second_head_only(base_dir, base_card, parts, recipe: _Recipe, lineage: dict, data_hash: str) -> ModelCard:
    """An extension whose new rows are all out of the base's domain: the base's main head, reference and rows
    are kept as they are (its CV figures stand), and only the second head is refitted."""
    second = fit_second_head(parts, recipe.progress)
    card = replace(base_card, base=lineage, training_data_sha256=data_hash, trained_at=now())
    card.pair_reader = reader_facts(recipe.reader) if second else {}
    card.out_of_domain = second_head_facts(second, None) if second else {}
    copy_model_files(base_dir, recipe.out_dir, second, card, recipe.reader)
    return card


class _Base(NamedTuple):
    """The model an extension starts from: its folder, card, kept training rows and second head (None: none)."""

    dir: Path
    card: ModelCard
    rows: TrainingRows
    second_head: SecondHead | None

    @classmethod
    def of(cls, base: str | Path) -> _Base:
        base_dir, card = base_model(base)
        return cls(base_dir, card, TrainingRows.load(base_dir / TRAINING_ROWS_FILE), load_second_head(base_dir))


@dataclass
class _Recipe:
    """One training run's settings and the parts every step of it uses: the encoders (a base's must match: new
    rows are embedded exactly as its rows were), the fetcher, and the pair reader the second head reads with."""

    options: TrainOptions
    out_dir: Path
    fetcher: ImageFetcher
    progress: Progress
    cache_root: Path | None
    photos: Path | None
    out_of_domain_pairs: str | Path | None
    base: InitVar[_Base | None]
    text: object = field(init=False)
    image: object = field(init=False)
    reader: Path = field(init=False)
    nli: Callable = field(init=False)  # the reader, loaded on its first call

    def __post_init__(self, base: _Base | None) -> None:
        from mmscore.encoders import registry

        self.text = registry.text_encoder(self.options.text_encoder, self.options.sequence_length)
        self.image = registry.image_encoder(self.options.image_encoder)
        if base:
            base.card.check_encoder("text", self.text)
            base.card.check_encoder("image", self.image)
        self.reader = reader_file(base.dir if base else None)
        self.nli = lazy_reader(self.reader)

    def embed(self, df: pd.DataFrame, images_dir: Path | None = None, features: bool = False) -> PairEmbeddings:
        """``df``'s pairs as vectors (cached); ``features``: with the lexical pair features the options ask for."""
        emb = embed_pairs(df, images_dir, self.fetcher, self.text, self.image, self.cache_root)
        if features and self.options.pair_features:
            emb.pair_features = PairPreprocessor(self.options.pair_features).pair_features(df["text_1"], df["text_2"])
        return emb


@dataclass
class _MainHead:
    """A fitted main head and what is saved with it (the reference, rows and second head are None when the text
    encoder was fine-tuned: they are made of the frozen vectors)."""

    head: object
    card: ModelCard
    fit: MainHeadFit
    tuner: FineTuner | None
    domain: object = None
    held_out: object = None
    rows: TrainingRows | None = None
    second: object = None


def _forms(df: pd.DataFrame) -> tuple:
    return text_form(list(df["text_1"])), text_form(list(df["text_2"]))


def _cv_over_seeds(recipe: _Recipe, emb, y, chosen: str, tuner, plan, layout_for, first: dict) -> dict:
    """The chosen loss cross-validated with ``cv_seeds`` seeds (the first is ``first``, already run): each seed
    draws its own folds (where ``layout_for`` lets it), initialisations and probe photos. The card lists each."""
    options = recipe.options
    per_seed = [seed_figures(options.seed, first)]
    for seed in range(options.seed + 1, options.seed + options.cv_seeds):
        recipe.progress(f"cross-validation over seeds: seed {seed} ({seed - options.seed + 1} of {options.cv_seeds})")
        reseeded = replace(options, seed=seed)
        metrics, _ = cross_validate(emb, y, chosen, reseeded, tuner, plan, layout_for(reseeded))
        per_seed.append(seed_figures(seed, metrics))
    return {"per_seed": per_seed, "over_seeds": over_seeds(per_seed)}


def _fit_main_head(recipe: _Recipe, df, emb, y, forms, layout_for, parts, data_hash: str) -> _MainHead:
    """Compare the losses by CV, fit the chosen one on every row, and fit the reference and the second head.
    ``layout_for(options)``: the rows' folds and weights for a run with those options (its seed)."""
    from mmscore.encoders import registry

    options, progress = recipe.options, recipe.progress
    layout = layout_for(options)
    plan = photo_plan(emb, recipe.photos, recipe.image, recipe.cache_root, progress)
    tuner = None
    if options.fine_tune:  # a private copy of the encoder: the shared one keeps its pretrained weights
        tuned = registry.build_text_encoder(options.text_encoder, options.sequence_length)
        tuner = FineTuner(tuned, list(df["text_1"]), list(df["text_2"]))
    per_loss, oofs, chosen = compare_losses(emb, y, options, tuner, plan, progress, layout)
    head = fit_final(emb, y, chosen, options, tuner, plan, progress, layout)
    fit = MainHeadFit(recipe.text, recipe.image, options, data_hash, emb, y, plan, chosen, per_loss, oofs[chosen],
                      tuner is not None, layout.calibrated)  # fmt: skip
    main = _MainHead(head, model_card(fit), fit, tuner)
    if options.cv_seeds > 1:
        main.card.cv_metrics.update(_cv_over_seeds(recipe, emb, y, chosen, tuner, plan, layout_for, per_loss[chosen]))
    if not tuner:  # a fine-tuned encoder places texts elsewhere than the frozen vectors the reference is made of
        progress("fitting the in-domain reference on held-out folds")
        main.domain, main.held_out, main.rows = kept_of_training(emb, forms, y, layout.fold_ids, layout.calibrated)
        main.second = fit_second_head(parts, progress) if main.domain is not None else None
    main.card.domain = main.domain.card_facts(recipe.text.name) if main.domain is not None else {}
    if main.second is not None:
        main.card.out_of_domain = second_head_facts(main.second, recipe.out_of_domain_pairs)
        main.card.pair_reader = reader_facts(recipe.reader)
    return main


def _save(recipe: _Recipe, main: _MainHead) -> None:
    tuned = main.tuner.text_encoder if main.tuner else None
    save_model(recipe.out_dir, main.head, main.card, tuned, main.domain, main.rows, main.second, recipe.reader)


def _train_fresh(recipe: _Recipe, df, emb, y, parts, data_hash: str) -> ModelCard:
    """A new model from ``df``'s rows alone, folds stratified by label; its routing figures come from them."""
    layout_for = partial(RowLayout.stratified, y)
    main = _fit_main_head(recipe, df, emb, y, _forms(df), layout_for, parts, data_hash)
    layout = layout_for(recipe.options)
    if main.second is not None:
        routing = routing_metrics(main.fit.oof, y, layout, main.held_out, main.second, df, emb, recipe.nli)
        main.card.out_of_domain["routing_on_training_pairs"] = routing
    _save(recipe, main)
    return main.card


def _extend(recipe: _Recipe, df, emb, y, parts, data_hash: str, base: _Base, weight: int) -> ModelCard:
    """The base model trained on: the new rows the router sends to its second head extend that head; the others
    join its kept rows (dealt over its folds, repeated ``weight`` times) to train the main head. When every new
    row is out of its domain, its main head, reference and rows are kept as they are."""
    outside = outside_base(base.dir, df, emb, base.second_head)
    if outside.any():
        parts.append(second_rows(df[outside], emb.subset(outside), recipe.nli, weight))
    lineage = _lineage(base.dir, base.card, len(base.rows), data_hash, outside, weight)
    data_hash = hashlib.sha256(f"{base.card.training_data_sha256}+{data_hash}".encode()).hexdigest()
    if outside.all():
        return _second_head_only(base.dir, base.card, parts, recipe, lineage, data_hash)
    df, emb, y = df[~outside].reset_index(drop=True), emb.subset(~outside), y[~outside]
    emb, y, forms, layout = _extended(base.rows, emb, y, _forms(df), recipe.options, weight)
    # The base rows keep their saved folds whatever the seed: other seeds vary initialisations and photo draws.
    main = _fit_main_head(recipe, df, emb, y, forms, lambda _options: layout, parts, data_hash)
    main.card.base = lineage
    _save(recipe, main)
    return main.card


def train_model(
    data: str | Path,
    out_dir: Path,
    fetcher: ImageFetcher,
    images_dir: Path | None = None,
    options: TrainOptions | None = None,
    progress: Progress = lambda _msg: None,
    cache_root: Path | None = None,
    photos: Path | None = None,
    base: str | Path | None = None,
    new_weight: int = defaults.NEW_WEIGHT,
    out_of_domain_pairs: str | Path | None = None,
) -> TrainResult:
    """The whole recipe; writes ``head.keras``, ``model_card.json``, the in-domain reference and the training
    rows into ``out_dir``.

    ``data`` is anything scoring reads: a CSV/Parquet file, a folder or glob of them, an object-store URI, or
    ``-`` (CSV on stdin, spooled to a temporary file: the rows are read, then hashed for the card).
    ``photos`` is a folder of real photos unrelated to the pairs (see :mod:`mmscore.training.unrelated_photos`).
    ``base``: a model directory (or ``default``) whose training rows are trained on together with ``data``'s,
    each new row repeated ``new_weight`` times; its encoders and pair features are the new model's.
    ``out_of_domain_pairs``: labelled pairs unlike ``data`` (plain language, say) for the second head, which labels
    the rows more like its pairs than like ``data``'s (:mod:`mmscore.model.second_head`). Extending, new rows the
    router sends to the base's second head join its rows; the others train the main head.
    """
    options, started = options or TrainOptions(), time.perf_counter()
    with readable_twice(data) as data:
        df, skipped = read_labelled_pairs(data)
        data_hash = data_sha256(data)
    start = _Base.of(base) if base is not None else None
    y = labels_of(df, data, options.folds if start is None else 1)
    progress(f"{len(df)} pairs ({skipped} skipped for empty text or label); loading encoders")
    recipe = _Recipe(options, Path(out_dir), fetcher, progress, cache_root, photos, out_of_domain_pairs, start)
    progress("embedding texts and images (cached)")
    emb = recipe.embed(df, images_dir, features=True)
    kept = start.second_head if start else None
    parts = second_head_parts(kept, out_of_domain_pairs, recipe.embed, recipe.nli)  # (texts only)
    if start is None:
        card = _train_fresh(recipe, df, emb, y, parts, data_hash)
    else:
        card = _extend(recipe, df, emb, y, parts, data_hash, start, new_weight)
    seconds = time.perf_counter() - started
    return TrainResult(card, card.cv_metrics.get("per_loss", {}), card.loss, skipped, emb.image_statuses, emb.encoded,
                       seconds)  # fmt: skip


def _extendable(base: str, out, text_encoder: str, image_encoder: str, fine_tune: bool, new_weight: int) -> ModelCard:
    """The base model's card, once the settings asked for can extend it (else a one-line InputError): the
    encoders are the base's (asked for by name or left at the default), no fine-tuning, a distinct output."""
    base_dir, card = base_model(base)
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
    if Path(out).resolve() == base_dir.resolve():
        raise InputError(f"--out {out} is the base model's folder: write the extended model elsewhere")
    return card


def train(
    data: str | Path,
    out: str | Path = defaults.MODEL_OUT,
    *,
    images: Path | None = None,
    folds: int = defaults.FOLDS,
    seed: int = defaults.SEED,
    epochs: int = defaults.EPOCHS,
    heads: int = defaults.HEADS,
    cv_seeds: int = defaults.CV_SEEDS,
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
    out_of_domain_pairs: str | Path | None = None,
    progress: Progress = lambda _msg: None,
) -> TrainResult:
    """``mmscore train`` as a function, every option a keyword with the CLI's name and default.

    ``data``: labelled pairs, anything scoring reads. ``images``: a folder of ``<id>.<ext>`` files (uses the
    ``id_*`` columns); otherwise ``image_*`` paths are read under ``image_root`` (default: where scoring would
    read them). ``loss``: losses to compare by CV macro-F1 (default: focal). ``cv_seeds``: CVs with other seeds,
    listed in the card. ``photos``: real photos unrelated to the pairs (an attached photo is no evidence).
    ``base``: extend that model folder (``default``: the shipped one): its kept rows and ``data``'s, each new row
    ``new_weight`` times, its encoders and pair features. ``out_of_domain_pairs``: labelled pairs unlike ``data``
    for the second head. Bad settings raise :class:`~mmscore.errors.InputError` before any work.
    """
    from mmscore.images.fetcher import build_fetcher
    from mmscore.io.pairs_reader import default_image_root

    for folder, option in ((images, "--images"), (photos, "--photos"), (image_root, "--image-root")):
        require_folder(folder, option)
    sequence_length = TrainOptions.sequence_length
    if base is not None:
        card = _extendable(base, out, text_encoder, image_encoder, fine_tune, new_weight)
        text_encoder, image_encoder, sequence_length = card.text_encoder, card.image_encoder, card.sequence_length
        pair_features = bool(card.pair_features)
    root = image_root or images or default_image_root(data)
    try:  # settings TrainOptions or the recipe refuses (e.g. more folds than rows) are the user's to fix
        features = LEXICAL_FEATURES if pair_features else ""
        options = TrainOptions(losses=tuple(loss) if loss else TrainOptions.losses, sequence_length=sequence_length,
                               folds=folds, seed=seed, epochs=epochs, heads=heads, cv_seeds=cv_seeds,
                               fine_tune=fine_tune, fine_tune_epochs=fine_tune_epochs, pair_features=features,
                               text_encoder=text_encoder, image_encoder=image_encoder)  # fmt: skip
        fetcher = build_fetcher(image_cache, offline=offline, allow_private_urls=allow_private_urls, image_root=root)
        with closing(fetcher):
            return train_model(data, Path(out), fetcher, images, options, progress, photos=photos, base=base,
                               new_weight=new_weight, out_of_domain_pairs=out_of_domain_pairs)  # fmt: skip
    except ValueError as exc:
        raise InputError(str(exc)) from exc
