"""What a training run writes: the model card, the in-domain reference and training rows, the model directory."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mmscore.errors import InputError, OutputError, first_line
from mmscore.io.atomic_write import atomic_path
from mmscore.metrics import fit_temperature
from mmscore.model.card import HEAD_FILE, TEXT_WEIGHTS_FILE, ModelCard
from mmscore.model.domain import DOMAIN_FILE, MAIN_UNCOUNTED_FLAGS, counted_flags, fit_domain_held_out
from mmscore.model.pair_reader import PAIR_READER_FILE
from mmscore.model.second_head import SECOND_HEAD_FILE
from mmscore.model.training_rows import TRAINING_ROWS_FILE, TrainingRows
from mmscore.training.cross_fitting import tune_offsets
from mmscore.training.embeddings import PairEmbeddings, image_rows
from mmscore.training.probes import PhotoPlan
from mmscore.version import __version__


def data_sha256(path: str | Path) -> str:
    """Hash of the training data's bytes: its one file, or its files in reading order (folder, glob, URI)."""
    from mmscore.io.pairs_reader import input_files

    digest = hashlib.sha256()
    for f in input_files(path):
        with f.open() as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def save_model(
    out_dir: Path, head, card: ModelCard, tuned_text_encoder=None, domain=None, rows=None, second=None, reader=None
) -> None:
    """Write the model directory, each file atomically; the card goes last, so a half-written model never loads.
    ``domain``: the in-domain reference (:mod:`mmscore.model.domain`); ``rows``: the training rows a later
    ``--base`` extension trains on (:mod:`mmscore.model.training_rows`); ``second``: the head for rows out of
    domain (:mod:`mmscore.model.second_head`); ``reader``: the pair reader file the second head reads with
    (:mod:`mmscore.model.pair_reader`), copied in with it; each written beside the head."""
    with _writing_model(out_dir):
        with atomic_path(out_dir / HEAD_FILE) as tmp:
            head.save(tmp)
        _copy_reader(reader if second is not None else None, out_dir)
        for name, content in ((DOMAIN_FILE, domain), (TRAINING_ROWS_FILE, rows), (SECOND_HEAD_FILE, second)):
            _write_kept(out_dir / name, content)
        (out_dir / TEXT_WEIGHTS_FILE).unlink(missing_ok=True)
        if tuned_text_encoder is not None:
            with atomic_path(out_dir / TEXT_WEIGHTS_FILE) as tmp:
                tuned_text_encoder.backbone.save_weights(tmp)
        card.save(out_dir)


@contextmanager
def _writing_model(out_dir: Path) -> Iterator[None]:
    """An OS error while writing the model folder becomes one line naming the folder."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write the model to {out_dir}: {exc.strerror or first_line(exc)}") from exc


def _write_kept(path: Path, content) -> None:
    """``content.save`` into ``path`` atomically; ``path`` removed when there is no content."""
    path.unlink(missing_ok=True)
    if content is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            content.save(handle)


def _copy_reader(reader: Path | None, out_dir: Path) -> None:
    """The pair reader file into the model folder (removed when the model has no second head to read for)."""
    target = out_dir / PAIR_READER_FILE
    if reader is not None and Path(reader).resolve() == target.resolve():
        return
    target.unlink(missing_ok=True)
    if reader is not None:
        with atomic_path(target) as tmp:
            shutil.copyfile(reader, tmp)


def copy_model_files(base_dir: Path, out_dir: Path, second, card: ModelCard, reader: Path | None = None) -> None:
    """A model directory made of ``base_dir``'s head, reference and training rows, ``second`` as its second head
    (reading with ``reader``, by default the base's pair reader) and ``card``; each file written atomically, the
    card last."""
    with _writing_model(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in (HEAD_FILE, DOMAIN_FILE, TRAINING_ROWS_FILE, TEXT_WEIGHTS_FILE):
            (out_dir / name).unlink(missing_ok=True)
            if (base_dir / name).is_file():
                with atomic_path(out_dir / name) as tmp:
                    shutil.copyfile(base_dir / name, tmp)
        _write_kept(out_dir / SECOND_HEAD_FILE, second)
        _copy_reader((reader or base_dir / PAIR_READER_FILE) if second is not None else None, out_dir)
        card.save(out_dir)


def now() -> str:
    """A card's ``trained_at``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class MainHeadFit:
    """What a main head's card is made from: the encoders and options it was trained with, the data's hash, its
    rows' embeddings and labels, the photo plan, and the loss comparison's outcome (``oof``: the chosen loss's
    out-of-fold logits; ``calibrated``: the rows offsets and temperature are fitted on, None for all)."""

    text: object  # the text encoder (name, version, describe())
    image: object  # the image encoder
    options: object  # TrainOptions
    data_sha256: str
    emb: PairEmbeddings
    labels: np.ndarray
    plan: PhotoPlan
    chosen: str
    per_loss: dict
    oof: np.ndarray
    fine_tuned: bool
    calibrated: np.ndarray | None = None


def model_card(fit: MainHeadFit) -> ModelCard:
    """The card of a model trained with ``fit.chosen``: offsets and temperature fitted on its out-of-fold logits
    (of the ``calibrated`` rows only, when given)."""
    rows = slice(None) if fit.calibrated is None else fit.calibrated
    y, text, image, options = fit.labels, fit.text, fit.image, fit.options
    offsets = tune_offsets(fit.oof[rows], y[rows])
    return ModelCard(
        text_encoder=text.name,
        image_encoder=image.name,
        encoder_versions={text.name: text.version, image.name: image.version},
        sequence_length=options.sequence_length,
        image_size=image.image_size,
        decision_offsets=[float(x) for x in offsets],
        temperature=fit_temperature(fit.oof[rows] + offsets, y[rows]),
        loss=fit.chosen,
        training_data_sha256=fit.data_sha256,
        training_rows=len(y),
        image_rows=image_rows(fit.emb),
        uses_images=fit.plan.uses_images,
        photo_augmentation=fit.plan.photos.card_facts() if fit.plan.photos else {},
        cv_metrics={"folds": options.folds, "seed": options.seed, "chosen": fit.chosen, "per_loss": fit.per_loss},
        trained_at=now(),
        mmscore_version=__version__,
        notes=f"images found: {int(fit.emb.image_mask.sum())} of {2 * len(y)}",
        text_encoder_weights=TEXT_WEIGHTS_FILE if fit.fine_tuned else "",
        pair_features=options.pair_features,
        encoders={"text": text.describe(), "image": image.describe()},
    )


def kept_of_training(
    emb: PairEmbeddings, forms, y: np.ndarray, fold_ids: np.ndarray, reference_rows=None, uncounted=MAIN_UNCOUNTED_FLAGS
):
    """What a model keeps of its training pairs: ``(in-domain reference, the reference rows' held-out
    (in_domain_score, in_domain), training rows)``, from the frozen text vectors, the texts' forms, the labels
    and the folds (never the texts). The reference is fitted on ``reference_rows`` only when given (an
    extension: the base's rows, the domain its main head is calibrated for; the second head learns the new).
    ``uncounted``: the surface flags the reference leaves out."""
    keep = np.ones(len(y), bool) if reference_rows is None else np.asarray(reference_rows, bool)
    counted = counted_flags(uncounted)
    fitted = fit_domain_held_out(
        emb.text_1[keep], emb.text_2[keep], forms[0][keep], forms[1][keep], fold_ids[keep], counted
    )
    domain, held_out = (None, None) if fitted is None else (fitted[0], fitted[0].place(fitted[1]))
    features = emb.pair_features if emb.pair_features is not None else np.zeros((len(y), 0), np.float32)
    rows = TrainingRows(emb.text_1, emb.text_2, emb.image_1, emb.image_2, emb.image_mask, features, *forms, y, fold_ids)
    return domain, held_out, rows


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
