"""Sentence vectors from a text backbone's outputs, the same way for every text encoder.

Pooled and normalised in float32 whatever the backbone ran in (bfloat16 at ``--precision bfloat16``).
"""

from __future__ import annotations


def l2_normalised(ops, vectors):
    return vectors / ops.maximum(ops.norm(vectors, axis=-1, keepdims=True), 1e-12)


def sentence_vector(ops, sequence, padding_mask, pooling: str = "mean"):
    """L2-normalised float32 vectors of ``sequence`` (batch, tokens, width): the mean over real tokens
    (``padding_mask`` true), or the first token's (``cls``)."""
    sequence = ops.cast(sequence, "float32")
    if pooling == "cls":
        return l2_normalised(ops, sequence[:, 0])
    weights = ops.expand_dims(ops.cast(padding_mask, sequence.dtype), -1)
    pooled = ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
    return l2_normalised(ops, pooled)
