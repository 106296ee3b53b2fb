"""Encoders by name, so a model card can say which to build and callers never import a class."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

import numpy as np


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


class ImageEncoder(Protocol):
    """What mmscore needs of an image encoder: pixels in, pooled features out."""

    name: str
    version: str
    dim: int
    image_size: int
    model: Any  # keras.Model: (n, size, size, 3) float32 in [0, 1] -> {"features": (n, dim), ...}

    def encode(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray: ...


# name -> factory(**options). Add an encoder by adding one line here.
TEXT_ENCODERS: dict[str, Callable[..., Any]] = {}
IMAGE_ENCODERS: dict[str, Callable[..., Any]] = {}


def _minilm(**options):
    from mmscore.encoders.text_minilm import MiniLMTextEncoder

    return MiniLMTextEncoder(**options)


def _mobilenet(**options):
    from mmscore.encoders.image_mobilenet import MobileNetImageEncoder

    return MobileNetImageEncoder(**options)


TEXT_ENCODERS["minilm-l6-v2"] = _minilm
IMAGE_ENCODERS["mobilenet-v2-imagenet"] = _mobilenet
DEFAULT_TEXT_ENCODER = "minilm-l6-v2"
DEFAULT_IMAGE_ENCODER = "mobilenet-v2-imagenet"


def _lookup(table: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[..., Any]:
    if name not in table:
        raise ValueError(f"unknown {kind} encoder {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def build_text_encoder(
    name: str = DEFAULT_TEXT_ENCODER, sequence_length: int = 128, dtype: str | None = None
) -> TextEncoder:
    """A new instance of the named text encoder, with its own weights (for fine-tuning); ``dtype`` is the
    Keras policy of its layers (None: float32)."""
    return _lookup(TEXT_ENCODERS, "text", name)(sequence_length=sequence_length, dtype=dtype)


@cache
def text_encoder(name: str = DEFAULT_TEXT_ENCODER, sequence_length: int = 128, dtype: str | None = None) -> TextEncoder:
    """The named text encoder with its pretrained weights, built once per process (per dtype) and shared."""
    return build_text_encoder(name, sequence_length, dtype)


@cache
def image_encoder(name: str = DEFAULT_IMAGE_ENCODER) -> ImageEncoder:
    """The named image encoder, built once per process."""
    return _lookup(IMAGE_ENCODERS, "image", name)()
