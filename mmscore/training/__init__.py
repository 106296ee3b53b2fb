"""Training the entailment head on frozen, cached encoder embeddings, with honest cross-validation.

Flow, one module per step: ``embeddings`` (read labelled pairs, embed texts and images, cached) ->
``probes`` (how images enter training; unrelated-photo probes) -> ``head_fit`` (seed heads, fine-tuning) ->
``cross_fitting`` (k-fold CV, offsets and temperature cross-fitted on out-of-fold logits) -> ``card`` (the
model card, the in-domain reference and training rows, the model directory) -> ``recipe`` (``train()``).
"""

from mmscore.training.card import data_sha256, kept_of_training, model_card, save_model
from mmscore.training.cross_fitting import RowLayout, compare_losses, cross_validate, cv_fold_ids, tune_offsets
from mmscore.training.embeddings import PairEmbeddings, embed_pairs, read_labelled_pairs
from mmscore.training.head_fit import fit_head, fit_heads, head_logits
from mmscore.training.options import LOSSES, TrainOptions, TrainResult
from mmscore.training.probes import PROBES, PhotoPlan, photo_plan
from mmscore.training.recipe import fit_final, train, train_model

__all__ = [
    "LOSSES",
    "PROBES",
    "PairEmbeddings",
    "PhotoPlan",
    "RowLayout",
    "TrainOptions",
    "TrainResult",
    "compare_losses",
    "cross_validate",
    "cv_fold_ids",
    "data_sha256",
    "embed_pairs",
    "fit_final",
    "fit_head",
    "fit_heads",
    "head_logits",
    "kept_of_training",
    "model_card",
    "photo_plan",
    "read_labelled_pairs",
    "save_model",
    "train",
    "train_model",
    "tune_offsets",
]
