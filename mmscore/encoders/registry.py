"""Encoders by name, so a model card can say which to build and callers never import a class."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

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


def build_text_encoder(name: str = DEFAULT_TEXT_ENCODER, sequence_length: int = 128, dtype: str | None = None):
    """A new instance of the named text encoder, with its own weights (for fine-tuning); ``dtype`` is the
    Keras policy of its layers (None: float32)."""
    return _lookup(TEXT_ENCODERS, "text", name)(sequence_length=sequence_length, dtype=dtype)


@cache
def text_encoder(name: str = DEFAULT_TEXT_ENCODER, sequence_length: int = 128, dtype: str | None = None):
    """The named text encoder with its pretrained weights, built once per process (per dtype) and shared."""
    return build_text_encoder(name, sequence_length, dtype)


@cache
def image_encoder(name: str = DEFAULT_IMAGE_ENCODER):
    """The named image encoder, built once per process."""
    return _lookup(IMAGE_ENCODERS, "image", name)()
