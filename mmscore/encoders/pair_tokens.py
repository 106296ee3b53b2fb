"""Both texts of every pair tokenised for a text encoder, padding trimmed to the longest real text."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairTokens:
    """Token ids and padding masks of ``text_1`` and ``text_2`` for each row."""

    ids_1: np.ndarray
    mask_1: np.ndarray
    ids_2: np.ndarray
    mask_2: np.ndarray

    @classmethod
    def of(cls, text_encoder, text_1: list[str], text_2: list[str]) -> PairTokens:
        arrays = []
        for texts in (text_1, text_2):
            ids, mask = text_encoder.tokenize(list(texts))
            arrays += [np.asarray(ids), np.asarray(mask)]
        longest = int(max(arrays[1].sum(1).max(), arrays[3].sum(1).max()))
        length = min(arrays[0].shape[1], (longest + 7) // 8 * 8)  # attention is masked: padding is pure cost
        return cls(*(a[:, :length] for a in arrays))

    def longest_per_row(self) -> np.ndarray:
        """Real tokens in the longer of each row's two texts."""
        return np.maximum(self.mask_1.sum(1), self.mask_2.sum(1))

    def rows(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ids_1, mask_1, ids_2, mask_2)`` of ``rows``."""
        return self.ids_1[rows], self.mask_1[rows], self.ids_2[rows], self.mask_2[rows]
