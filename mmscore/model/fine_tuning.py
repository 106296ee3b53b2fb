"""End-to-end training of the text encoder together with the head (``mmscore train --fine-tune``).

The head is first fitted on frozen embeddings (a warm start); then the MiniLM backbone and the head
are trained jointly at a small learning rate. Image embeddings stay frozen and come from the cache.
Texts are still encoded one at a time (bi-encoder), as at scoring time.
"""

from __future__ import annotations

import numpy as np

from mmscore.encoders.pair_tokens import PairTokens
from mmscore.model.head_inputs import LEXICAL, head_inputs, in_head_order, lexical_width


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
    width = lexical_width(head)
    lexical = keras.Input((width,), name=LEXICAL) if width else None
    if lexical is not None:
        inputs.append(lexical)
    logits = head(in_head_order(head, head_inputs(text_1, text_2, image_1, image_2, image_mask, lexical)))
    return keras.Model(inputs, logits)


def model_inputs(tokens: PairTokens, emb, rows) -> list[np.ndarray]:
    """The end-to-end model's inputs for ``rows``, in :func:`end_to_end_model`'s order."""
    inputs = [
        *tokens.rows(rows),
        emb.image_1[rows],
        emb.image_2[rows],
        emb.image_mask[rows],
    ]
    if emb.pair_features is not None:
        inputs.append(emb.pair_features[rows])
    return inputs
