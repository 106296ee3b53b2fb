"""The trainable part: fuses two text embeddings and two (maybe missing) image embeddings into 3 labels.

Inputs are encoder outputs, so the head trains in seconds on cached embeddings and runs after the
frozen encoders at scoring time. Only registered layers are used: the saved file loads with
``safe_mode=True`` and holds no pickled code.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from mmscore.labels import LABELS
from mmscore.model.head_inputs import LEXICAL, NAMES, in_head_order, keras_inputs


@keras.saving.register_keras_serializable(package="mmscore")
class ModalityDropout(layers.Layer):
    """While training, hide each present image with probability ``rate`` (the model must cope without)."""

    def __init__(self, rate: float = 0.3, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, mask, training=False):
        if not training or self.rate <= 0:
            return mask
        keep = keras.random.uniform(ops.shape(mask), seed=self.seed_generator) >= self.rate
        return mask * ops.cast(keep, mask.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="mmscore")
class PairFeatures(layers.Layer):
    """``[a, b, |a - b|, a * b]``, each side first multiplied by its presence (0 hides a missing image)."""

    def call(self, a, b, present_a=None, present_b=None):
        if present_a is not None:
            a = a * present_a
            b = b * present_b
        return ops.concatenate([a, b, ops.abs(a - b), a * b], axis=-1)


def build_entailment_head(
    text_dim: int,
    image_dim: int,
    *,
    hidden: int = 64,
    dropout: float = 0.5,
    modality_dropout: float = 0.3,
    l2: float = 1e-3,
    pair_feature_dim: int = 0,
    wide_l2: float = 1e-2,
    seed: int = 0,
    name: str = "entailment_head",
) -> keras.Model:
    """Inputs ``text_1, text_2, image_1, image_2, image_mask (B, 2)`` -> logits over :data:`LABELS`.

    With ``pair_feature_dim`` > 0 the head also takes ``pair_features`` (see
    :mod:`mmscore.model.pair_features`): normalised by a ``pair_features_norm`` layer (call ``adapt`` on
    the training rows), fed into the fusion, and, with the text pair, into a strongly regularised
    linear path added to the logits (wide and deep).
    """
    reg = keras.regularizers.L2(l2)
    named = keras_inputs(text_dim, image_dim, pair_feature_dim)
    text_1, text_2, image_1, image_2, image_mask = (named[name] for name in NAMES[:5])

    mask = ModalityDropout(modality_dropout, seed=seed, name="modality_dropout")(image_mask)
    present_1 = layers.Reshape((1,))(mask[:, 0])
    present_2 = layers.Reshape((1,))(mask[:, 1])
    text_pair = PairFeatures(name="text_pair")(text_1, text_2)
    text = layers.Dense(hidden, activation="gelu", kernel_regularizer=reg, name="text_proj")(text_pair)
    image = PairFeatures(name="image_pair")(image_1, image_2, present_1, present_2)
    image = layers.Dense(hidden, activation="gelu", kernel_regularizer=reg, name="image_proj")(image)
    # The mask itself stays out of the fusion: a raw "an image is present" input is the shortcut that made any
    # photo flip labels (measured: 5.9 % of CV labels flipped with it, 1.7 % without, same macro-F1).
    fused = [text, image]
    if pair_feature_dim:
        pair = named[LEXICAL]
        pair_norm = layers.Normalization(name="pair_features_norm")(pair)
        fused.append(layers.Dense(16, activation="gelu", kernel_regularizer=reg, name="pair_proj")(pair_norm))
    x = layers.Concatenate(name="fusion")(fused)
    x = layers.Dropout(dropout, seed=seed)(x)
    x = layers.Dense(hidden // 2, activation="gelu", kernel_regularizer=reg, name="fused")(x)
    x = layers.Dropout(dropout, seed=seed + 1)(x)
    logits = layers.Dense(len(LABELS), name="logits", dtype="float32")(x)  # float32 under mixed precision
    if pair_feature_dim:
        wide = layers.Concatenate(name="wide_inputs")([text_pair, pair_norm])
        wide = layers.Dense(
            len(LABELS), kernel_regularizer=keras.regularizers.L2(wide_l2), name="wide", dtype="float32"
        )(wide)
        logits = layers.Add(name="wide_and_deep", dtype="float32")([logits, wide])
    return keras.Model(list(named.values()), logits, name=name)


def average_heads(heads: list[keras.Model]) -> keras.Model:
    """One model whose logits are the mean of ``heads``' logits (heads trained from different seeds): the same
    inputs by name, so scoring, saving and loading treat it as one head. A single head is returned as it is."""
    if len(heads) == 1:
        return heads[0]
    inputs = {t.name: keras.Input(tuple(t.shape[1:]), name=t.name) for t in heads[0].inputs}
    # a dict of symbolic inputs would be matched by sorted name: hand each head a list in its own order
    logits = layers.Average(name="seed_average", dtype="float32")([head(in_head_order(head, inputs)) for head in heads])
    return keras.Model(list(inputs.values()), logits, name="entailment_heads")
