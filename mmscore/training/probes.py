"""How images enter training (hidden, or unrelated photos attached) and the unrelated-photo probes of each fold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmscore.metrics import macro_f1
from mmscore.training.embeddings import PairEmbeddings, image_rows
from mmscore.training.options import Progress, TrainOptions
from mmscore.training.unrelated_photos import PhotoSets, attach_unrelated, load_photo_sets, probe_photos, without_images

# Without unrelated photos to augment with, the image path is used only when at least this share of
# training rows has an image of its own: then a present image is common, not a mark of a few labels.
MIN_IMAGE_ROW_SHARE = 0.25


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


PROBE_SEED = 1_000  # the probe's photo assignment never coincides with augmentation's


def _robustness(y: np.ndarray, pred: np.ndarray, probed: np.ndarray) -> dict:
    """Share of labels that change when photos are attached, and what that does to macro-F1."""
    probed_f1 = macro_f1(y, probed)
    return {
        "flip_rate": float((pred != probed).mean()),
        "macro_f1": probed_f1,
        "macro_f1_change": probed_f1 - macro_f1(y, pred),
    }


def photo_plan(emb: PairEmbeddings, photos: Path | None, image_encoder, cache_root, progress: Progress) -> PhotoPlan:
    """Augment with unrelated photos when given; else use images only if enough rows carry their own.

    Below :data:`MIN_IMAGE_ROW_SHARE` and without photos, the image path is off: a head fitted on a
    handful of images learns "an image is present" as a label (8 of 1,260 rows turned 65 % of labels).
    """
    if photos is not None:
        progress(f"embedding unrelated photos from {photos} (cached)")
        return PhotoPlan(True, load_photo_sets(photos, image_encoder, cache_root))
    return PhotoPlan(image_rows(emb) >= MIN_IMAGE_ROW_SHARE * len(emb.text_1))
