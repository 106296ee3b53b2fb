"""Any keras-hub preset as an encoder: a preset name (downloaded by keras-hub when the machine can reach its
hub) or a local preset folder, in keras-hub's format or the Hugging Face format keras-hub reads.

Pooling follows what the checkpoint was trained for (see :func:`text_pooling`); the weights are hashed so a
model card can insist on exactly the encoder it was trained with, and embedding caches never mix encoders.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from mmscore.encoders.base import encode_images, encode_texts, weights_sha256
from mmscore.encoders.pooling import l2_normalised, sentence_vector
from mmscore.errors import EncoderUnavailable, first_line

FALLBACK_IMAGE_SIZE = 224  # for an image preset without an image converter


def is_local(spec: str) -> bool:
    """A folder path (``./bert``, ``/models/resnet``, ``~/x``) rather than a preset name or a ``scheme://`` handle."""
    return "://" not in spec and ("/" in spec or spec.startswith((".", "~")) or Path(spec).exists())


def resolved_spec(spec: str) -> str:
    """What a model card stores: a local folder as an absolute path, anything else as given."""
    return str(Path(spec).expanduser().resolve()) if is_local(spec) else spec


def _load(kind: str, spec: str, what: str, loader):
    """``loader(resolved spec)``, with any failure turned into one line naming the encoder as the user wrote it."""
    if is_local(spec) and not Path(spec).expanduser().is_dir():
        raise EncoderUnavailable(f"{kind} encoder {spec!r}: no such preset folder")
    try:
        return loader(resolved_spec(spec))
    except (ImportError, MemoryError):
        raise
    except Exception as exc:  # keras-hub raises anything from ValueError to requests' ConnectionError
        reason = first_line(exc, 160)
        if not is_local(spec) and ("connect" in reason.lower() or "resolve" in reason.lower()):
            reason = "cannot reach the preset hub to download it (offline?); use a local preset folder"
        raise EncoderUnavailable(f"{kind} encoder {spec!r}: cannot load its {what}: {reason}") from exc


def text_pooling(spec: str, backbone) -> str:
    """``mean`` for sentence-transformers checkpoints (their ``1_Pooling`` says so) and for backbones without a
    pooled output; ``pooled`` where the backbone's pooler was trained (BERT's next-sentence head)."""
    pooling_config = Path(spec) / "1_Pooling" / "config.json" if is_local(spec) else None
    if pooling_config is not None and pooling_config.is_file():
        config = json.loads(pooling_config.read_text())
        return "cls" if config.get("pooling_mode_cls_token") else "mean"
    return "pooled" if isinstance(backbone.output, dict) and "pooled_output" in backbone.output else "mean"


class PresetTextEncoder:
    """Sentence vectors (L2-normalised) from a keras-hub text backbone and its preset's preprocessor."""

    def __init__(self, spec: str, sequence_length: int = 128, dtype: str | None = None):
        import keras
        import keras_hub

        self.name = resolved_spec(spec)
        self.sequence_length = sequence_length
        options = {"dtype": dtype} if dtype else {}
        backbone = keras_hub.models.Backbone
        self.backbone = _load("text", spec, "backbone", lambda s: backbone.from_preset(s, **options))
        if not isinstance(self.backbone.input, dict) or "token_ids" not in self.backbone.input:
            kind = type(self.backbone).__name__
            raise EncoderUnavailable(f"text encoder {spec!r}: {kind} is not a text backbone (no token_ids input)")
        self.preprocessor = _load(
            "text",
            spec,
            "preprocessor",
            lambda s: keras_hub.models.TextClassifierPreprocessor.from_preset(s, sequence_length=sequence_length),
        )
        self.pooling = text_pooling(self.name, self.backbone)
        self.model = self._sentence_model(keras)
        self.dim = int(self.model.output.shape[-1])

    def _sentence_model(self, keras):
        ops = keras.ops
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if "segment_ids" in self.backbone.input:  # one text per call: every token is segment 0
            inputs["segment_ids"] = ops.zeros_like(token_ids)
        outputs = self.backbone(inputs)
        if self.pooling == "pooled":
            vectors = l2_normalised(ops, ops.cast(outputs["pooled_output"], "float32"))
        else:
            sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
            vectors = sentence_vector(ops, sequence, padding_mask, self.pooling)
        return keras.Model([token_ids, padding_mask], vectors, name="preset_sentence_encoder")

    @cached_property
    def weights_sha256(self) -> str:
        return weights_sha256(self.backbone)

    @property
    def version(self) -> str:  # embedding caches are keyed by it: other weights never reuse these vectors
        return self.weights_sha256[:16]

    def tokenize(self, texts):
        """Strings -> ``(token_ids int32, padding_mask bool)`` by the preset's own preprocessor."""
        import tensorflow as tf

        packed = self.preprocessor(tf.constant(list(texts)) if isinstance(texts, list) else texts)
        return tf.cast(packed["token_ids"], tf.int32), tf.cast(packed["padding_mask"], tf.bool)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return encode_texts(self, texts, batch_size)

    def describe(self) -> dict:
        return {
            "spec": self.name,
            "backbone": type(self.backbone).__name__,
            "pooling": f"{self.pooling}, L2-normalised",
            "weights_sha256": self.weights_sha256,
        }


class PresetImageEncoder:
    """Global-average-pooled features of a keras-hub image backbone, pixels scaled by its preset's converter."""

    def __init__(self, spec: str, dtype: str | None = None):
        import keras
        import keras_hub

        self.name = resolved_spec(spec)
        options = {"dtype": dtype} if dtype else {}
        backbone = keras_hub.models.Backbone
        self.backbone = _load("image", spec, "backbone", lambda s: backbone.from_preset(s, **options))
        if isinstance(self.backbone.input, dict) or len(self.backbone.input.shape) != 4:
            kind = type(self.backbone).__name__
            raise EncoderUnavailable(f"image encoder {spec!r}: {kind} is not an image backbone")
        try:
            converter = keras_hub.layers.ImageConverter.from_preset(self.name)
        except Exception:  # a backbone-only preset: pixels in [0, 1] at the fallback size
            converter = None
        size = converter.image_size if converter is not None and converter.image_size else None
        self.image_size = int(size[0]) if size else FALLBACK_IMAGE_SIZE
        self.scale = _per_channel(converter.scale if converter is not None else 1 / 255.0, 1 / 255.0)
        self.offset = _per_channel(converter.offset if converter is not None else 0.0, 0.0)
        self.model = self._feature_model(keras)
        self.dim = int(self.model.output["features"].shape[-1])

    def _feature_model(self, keras):
        ops = keras.ops
        pixels = keras.Input((self.image_size, self.image_size, 3), name="pixels")  # float in [0, 1]
        # The converter's scale and offset expect 0..255 values; Pillow already resized to image_size.
        scaled = pixels * 255.0 * ops.convert_to_tensor(self.scale) + ops.convert_to_tensor(self.offset)
        feature_map = ops.cast(self.backbone(scaled), "float32")
        features = ops.mean(feature_map, axis=(1, 2))
        return keras.Model(pixels, {"features": features}, name="preset_image_encoder")

    @cached_property
    def weights_sha256(self) -> str:
        return weights_sha256(self.backbone)

    @property
    def version(self) -> str:
        return self.weights_sha256[:16]

    def encode(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 or [0, 1] float images ``(N, size, size, 3)`` -> ``(N, dim)`` features."""
        return encode_images(self, images, batch_size)

    def describe(self) -> dict:
        return {
            "spec": self.name,
            "backbone": type(self.backbone).__name__,
            "pooling": "global average of the last feature map",
            "image_size": self.image_size,
            "weights_sha256": self.weights_sha256,
        }


def _per_channel(value, default: float) -> np.ndarray:
    """A converter's scale/offset (None, a number or one per channel) as a float32 array."""
    return np.asarray(default if value is None else value, np.float32)
