"""Fit the in-domain reference (``domain.npz``) of an existing model directory from its training data.

Models trained by this version of ``mmscore train`` get one automatically; this adds one to a model trained
before (the shipped default model got its reference this way). The data must be the very file the model was
trained on (its sha256 is checked against the card), and the folds are the training run's own.

    .venv/bin/python train/fit_domain.py ../shared/data/tweets/tweets_trainval.csv mmscore/default_model
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(data: str, model_dir: str) -> None:
    from mmscore.encoders import registry
    from mmscore.labels import LABEL_INDEX
    from mmscore.model.card import ModelCard
    from mmscore.model.domain import DomainReference, fit_domain
    from mmscore.training import TrainOptions, cv_fold_ids, data_sha256, read_labelled_pairs, save_model

    card = ModelCard.load(Path(model_dir))
    if data_sha256(data) != card.training_data_sha256:
        sys.exit(f"{data} is not the data {model_dir} was trained on (sha256 differs from the card's)")
    if card.text_encoder_weights:
        sys.exit(f"{model_dir} has a fine-tuned text encoder: retrain it to get a reference")
    df, _ = read_labelled_pairs(data)
    y = np.array([LABEL_INDEX[v] for v in df["label"]])
    seed = card.cv_metrics.get("seed", 0)
    options = TrainOptions(folds=card.cv_metrics.get("folds", 5), seed=seed)
    text = registry.text_encoder(card.text_encoder, card.sequence_length)
    vectors = text.encode(list(df["text_1"]) + list(df["text_2"]))  # float32, as training embeds
    n = len(df)
    domain = fit_domain(vectors[:n], vectors[n:], df["text_1"], df["text_2"], cv_fold_ids(y, options))
    card.domain = domain.card_facts(text.name)
    import keras

    import mmscore.model.entailment_head  # noqa: F401  (registers the head's layers)

    head = keras.saving.load_model(Path(model_dir) / "head.keras", compile=False, safe_mode=True)
    save_model(Path(model_dir), head, card, None, domain)
    reloaded = DomainReference.load(Path(model_dir) / "domain.npz")
    print(f"wrote {model_dir}/domain.npz: {len(reloaded.text_vectors)} texts, cut {card.domain['cut']}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
