"""End-to-end training of the text encoder together with the head (``mmscore train --fine-tune``).

The head is first fitted on frozen embeddings (a warm start); then the MiniLM backbone and the head
are trained jointly at a small learning rate. Image embeddings stay frozen and come from the cache.
Texts are still encoded one at a time (bi-encoder), as at scoring time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairTokens:
    """Token ids and padding masks for both texts of every pair, trimmed to the longest real text."""

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


def end_to_end_model(text_encoder, head, image_dim: int):
    """Tokens + image embeddings -> head logits, sharing (not copying) the encoder's and head's weights."""
    import keras

    ids_1 = keras.Input((None,), dtype="int32", name="ids_1")
    mask_1 = keras.Input((None,), dtype="bool", name="mask_1")
    ids_2 = keras.Input((None,), dtype="int32", name="ids_2")
    mask_2 = keras.Input((None,), dtype="bool", name="mask_2")
    image_1 = keras.Input((image_dim,), name="image_1")
    image_2 = keras.Input((image_dim,), name="image_2")
    image_mask = keras.Input((2,), name="image_mask")
    inputs = [ids_1, mask_1, ids_2, mask_2, image_1, image_2, image_mask]
    text_1, text_2 = text_encoder.model([ids_1, mask_1]), text_encoder.model([ids_2, mask_2])
    by_name = {"text_1": text_1, "text_2": text_2, "image_1": image_1, "image_2": image_2, "image_mask": image_mask}
    for extra in head.inputs:
        if extra.name == "pair_features":
            by_name[extra.name] = keras.Input(extra.shape[1:], name=extra.name)
            inputs.append(by_name[extra.name])
    # Positional, in the head's input order (a dict of symbolic tensors is matched by sorted key, not name).
    logits = head([by_name[t.name] for t in head.inputs])
    return keras.Model(inputs, logits)


def model_inputs(tokens: PairTokens, emb, rows) -> list[np.ndarray]:
    """The end-to-end model's inputs for ``rows``, in :func:`end_to_end_model`'s order."""
    inputs = [
        tokens.ids_1[rows],
        tokens.mask_1[rows],
        tokens.ids_2[rows],
        tokens.mask_2[rows],
        emb.image_1[rows],
        emb.image_2[rows],
        emb.image_mask[rows],
    ]
    if emb.pair_features is not None:
        inputs.append(emb.pair_features[rows])
    return inputs
