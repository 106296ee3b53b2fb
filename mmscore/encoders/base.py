"""What every encoder is (the two Protocols) and the helpers the concrete encoders share.

The concrete encoders import this module; :mod:`mmscore.encoders.registry` imports them. Nothing here imports
an encoder, so the import arrows point one way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from mmscore.images.decode import unit_pixels


class TextEncoder(Protocol):
    """What mmscore needs of a text encoder: tokens for the compiled step, vectors for training."""

    name: str
    version: str
    dim: int
    sequence_length: int
    model: Any  # keras.Model: [token_ids, padding_mask] -> (n, dim) float32, L2-normalised
    backbone: Any  # the trainable part (fine-tuning loads and saves its weights)

    def tokenize(self, texts) -> tuple[Any, Any]: ...  # -> (token_ids int32, padding_mask bool)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...

    def describe(self) -> dict: ...  # spec, backbone class, pooling, weights_sha256: what a model card records


class ImageEncoder(Protocol):
    """What mmscore needs of an image encoder: pixels in, pooled features out."""

    name: str
    version: str
    dim: int
    image_size: int
    model: Any  # keras.Model: (n, size, size, 3) float32 in [0, 1] -> {"features": (n, dim), ...}

    def encode(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray: ...

    def describe(self) -> dict: ...


def _in_batches(items, batch_size: int, dim: int, encode_batch: Callable[[Any], Any]) -> np.ndarray:
    """``encode_batch`` over slices of ``items``, concatenated; ``(0, dim)`` for no items."""
    out = [np.asarray(encode_batch(items[start : start + batch_size])) for start in range(0, len(items), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def encode_texts(encoder: TextEncoder, texts, batch_size: int) -> np.ndarray:
    """``encoder.model`` on tokenised batches of ``texts`` (each text on its own, never joined to another)."""
    return _in_batches(texts, batch_size, encoder.dim, lambda b: encoder.model(list(encoder.tokenize(list(b)))))


def encode_images(encoder: ImageEncoder, images, batch_size: int) -> np.ndarray:
    """``encoder.model``'s features of ``images`` (uint8, or float in [0, 1]), batch by batch."""
    return _in_batches(images, batch_size, encoder.dim, lambda b: encoder.model(unit_pixels(b))["features"])


def weights_sha256(model) -> str:
    """Hash of every weight value in order: the same checkpoint gives the same hash on any machine."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight, np.float32)).tobytes())
    return digest.hexdigest()
