"""The training pairs a model keeps of itself, so that a user's labels can extend it (``mmscore train NEW
--base MODEL``): the head's inputs, never the texts.

The head trains on frozen encoder outputs, and those carry no text: each pair's two text vectors, its image
vectors (stored only for the few rows that have an image), its lexical pair features, the surface statistics
of its texts (for the in-domain reference), its label and its cross-validation fold. About 2 MB for the
shipped model's 1,260 pairs (float16 text vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmscore.model.domain import with_every_flag

TRAINING_ROWS_FILE = "training_rows.npz"


@dataclass
class TrainingRows:
    text_1: np.ndarray  # (n, text dim)
    text_2: np.ndarray
    image_1: np.ndarray  # (n, image dim), zero where the post had no decoded image
    image_2: np.ndarray
    image_mask: np.ndarray  # (n, 2)
    pair_features: np.ndarray  # (n, k); k = 0 for a head without lexical features
    form_1: np.ndarray  # (n, f) mmscore.model.domain.text_form of each text
    form_2: np.ndarray
    labels: np.ndarray  # (n,) label indices
    folds: np.ndarray  # (n,) the fold each row was validated in

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, handle) -> None:
        with_image = np.flatnonzero(self.image_mask.sum(1) > 0)
        np.savez_compressed(
            handle,
            text_1=self.text_1.astype(np.float16),
            text_2=self.text_2.astype(np.float16),
            image_rows=with_image,
            image_1=self.image_1[with_image].astype(np.float16),
            image_2=self.image_2[with_image].astype(np.float16),
            image_dim=np.array(self.image_1.shape[1]),
            image_mask=self.image_mask.astype(np.int8),
            pair_features=self.pair_features.astype(np.float32),
            form_1=self.form_1.astype(np.float32),
            form_2=self.form_2.astype(np.float32),
            labels=self.labels.astype(np.int8),
            folds=self.folds.astype(np.int16),
        )

    @classmethod
    def load(cls, path: Path) -> TrainingRows:
        with np.load(path, allow_pickle=False) as z:
            n, dim, rows = len(z["labels"]), int(z["image_dim"]), z["image_rows"]
            images = np.zeros((2, n, dim), np.float32)
            images[0, rows], images[1, rows] = z["image_1"], z["image_2"]
            return cls(
                z["text_1"].astype(np.float32),
                z["text_2"].astype(np.float32),
                images[0],
                images[1],
                z["image_mask"].astype(np.float32),
                z["pair_features"],
                with_every_flag(z["form_1"]),
                with_every_flag(z["form_2"]),
                z["labels"].astype(np.int64),
                z["folds"].astype(np.int64),
            )


def load_training_rows(directory: Path) -> TrainingRows | None:
    """The model directory's training rows, or None for a model saved without them."""
    path = Path(directory) / TRAINING_ROWS_FILE
    return TrainingRows.load(path) if path.is_file() else None
