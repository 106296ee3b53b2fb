"""Rows -> model inputs, in one place, for scoring, training and fine-tuning (keras-hub's Preprocessor role).

A pair's texts become token ids and masks (:meth:`PairPreprocessor.tokens`) and lexical features
(:meth:`PairPreprocessor.pair_features`); images the mask the head sees (:func:`visible_image_mask`; decoded pixels
become unit pixels in :mod:`mmscore.images.decode`). The scoring step, the training embeddings and the fine-tuning
model all call these, so a model is fed the same way wherever it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmscore.encoders.pair_tokens import PairTokens
from mmscore.model.pair_features import pair_features as lexical_features


def visible_image_mask(image_mask, uses_images: bool):
    """The image mask the head sees: a text-only model never sees an image (its statuses are still reported).
    Works on numpy arrays and tensors alike."""
    return image_mask if uses_images else image_mask * 0


class PairPreprocessor:
    """Texts of pairs -> a model's text inputs. ``lexical``: the pair-feature set the head takes ("" for none);
    ``text_encoder``: whose tokenizer makes the token ids (needed for :meth:`tokens` only)."""

    def __init__(self, lexical: str = "", text_encoder=None):
        self.lexical = lexical
        self.text_encoder = text_encoder

    def pair_features(self, text_1: Sequence[str], text_2: Sequence[str]) -> np.ndarray:
        """The lexical features the head takes, ``(n, 0)`` when it takes none."""
        if not self.lexical:
            return np.zeros((len(text_1), 0), np.float32)
        return lexical_features(text_1, text_2, self.lexical)

    def tokens(self, text_1: Sequence[str], text_2: Sequence[str]) -> PairTokens:
        """Both texts of every row tokenised, padding trimmed to the longest real text."""
        return PairTokens.of(self.text_encoder, text_1, text_2)
