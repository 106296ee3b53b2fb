"""Training options, their checks, and what a training run returns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from mmscore import defaults
from mmscore.model.card import ModelCard
from mmscore.model.pair_features import KNOWN as KNOWN_PAIR_FEATURES
from mmscore.model.pair_features import NAME as LEXICAL_FEATURES

LOSSES = ("cross_entropy", "class_weighted", "focal")


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
    cv_seeds: int = defaults.CV_SEEDS  # cross-validations with seeds seed, seed+1, ...: figures over seeds
    pair_features: str = LEXICAL_FEATURES  # lexical overlap features as a head input; "" for none

    def __post_init__(self):
        unknown = set(self.losses) - set(LOSSES)
        if unknown or not self.losses:
            raise ValueError(f"unknown loss(es) {sorted(unknown)}; choose from {', '.join(LOSSES)}")
        if self.folds < 2:
            raise ValueError("folds must be at least 2")
        if self.heads < 1:
            raise ValueError("heads must be at least 1")
        if self.cv_seeds < 1:
            raise ValueError("cv_seeds must be at least 1")
        if self.pair_features and self.pair_features not in KNOWN_PAIR_FEATURES:
            raise ValueError(f"unknown pair features {self.pair_features!r}; known: {', '.join(KNOWN_PAIR_FEATURES)}")


@dataclass
class TrainResult:
    card: ModelCard
    per_loss: dict[str, dict]
    chosen_loss: str
    skipped_rows: int
    image_statuses: Counter
    encoded: Counter
    seconds: float = 0.0
