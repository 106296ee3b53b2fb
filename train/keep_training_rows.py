"""Add the in-domain reference (``domain.npz``) and the kept training rows (``training_rows.npz``) to a model
directory trained before they existed, from the very data it was trained on.

Models trained by this version of ``mmscore train`` get both automatically; the shipped default model got them
this way. The data's sha256 is checked against the card, the folds are the training run's own, and the images
come from the same ``--images`` folder the model was trained with.

    .venv/bin/python train/keep_training_rows.py ../shared/data/tweets/tweets_trainval.csv mmscore/default_model \\
        ../shared/data/images/tweet_images_lowres
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(data: str, model_dir: str, images: str | None = None) -> None:
    from mmscore.encoders import registry
    from mmscore.images.fetcher import build_fetcher
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.card import ModelCard
    from mmscore.model.domain import DOMAIN_FILE, text_form
    from mmscore.model.pair_features import pair_features
    from mmscore.model.training_rows import TRAINING_ROWS_FILE
    from mmscore.training import (
        TrainOptions,
        cv_fold_ids,
        data_sha256,
        embed_pairs,
        kept_of_training,
        read_labelled_pairs,
    )

    model = Path(model_dir)
    card = ModelCard.load(model)
    if data_sha256(data) != card.training_data_sha256:
        sys.exit(f"{data} is not the data {model_dir} was trained on (sha256 differs from the card's)")
    if card.text_encoder_weights:
        sys.exit(f"{model_dir} has a fine-tuned text encoder: retrain it instead")
    df, _ = read_labelled_pairs(data)
    y = np.array([LABEL_INDEX[v] for v in df["label"]])
    options = TrainOptions(folds=card.cv_metrics.get("folds", 5), seed=card.cv_metrics.get("seed", 0))
    text = registry.text_encoder(card.text_encoder, card.sequence_length)
    image = registry.image_encoder(card.image_encoder)
    fetcher = build_fetcher(offline=True, image_root=Path(images) if images else Path(data).resolve().parent)
    try:
        emb = embed_pairs(df, Path(images) if images else None, fetcher, text, image)
    finally:
        fetcher.close()
    features = pair_features(df["text_1"], df["text_2"], card.pair_features) if card.pair_features else None
    forms = (text_form(list(df["text_1"])), text_form(list(df["text_2"])))
    emb.pair_features = features
    domain, _in_domain, rows = kept_of_training(emb, forms, y, cv_fold_ids(y, options))
    for name, content in ((DOMAIN_FILE, domain), (TRAINING_ROWS_FILE, rows)):
        with open(model / name, "wb") as handle:
            content.save(handle)
    card.domain = domain.card_facts(text.name)
    card.save(model)
    print(f"wrote {DOMAIN_FILE} and {TRAINING_ROWS_FILE} ({len(rows)} rows, {int(emb.image_mask.sum())} images)")


if __name__ == "__main__":
    main(*sys.argv[1:4])
