"""What a training run writes: the model card, the in-domain reference and training rows, the model directory."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mmscore.errors import OutputError, first_line
from mmscore.io.atomic_write import atomic_path
from mmscore.metrics import fit_temperature
from mmscore.model.card import HEAD_FILE, TEXT_WEIGHTS_FILE, ModelCard
from mmscore.model.domain import DOMAIN_FILE, fit_domain_forms
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


def model_card(
    text, image, options, data_hash: str, emb, plan: PhotoPlan, chosen, per_loss, oof, y, tuned, calibrated=None
):
    """The card of a model trained with ``chosen``: offsets and temperature fitted on its out-of-fold logits
    (of the ``calibrated`` rows only, when given)."""
    rows = slice(None) if calibrated is None else calibrated
    offsets = tune_offsets(oof[rows], y[rows])
    return ModelCard(
        text_encoder=text.name,
        image_encoder=image.name,
        encoder_versions={text.name: text.version, image.name: image.version},
        sequence_length=options.sequence_length,
        image_size=image.image_size,
        decision_offsets=[float(x) for x in offsets],
        temperature=fit_temperature(oof[rows] + offsets, y[rows]),
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
