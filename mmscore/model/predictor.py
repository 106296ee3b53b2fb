"""Load a model directory (head weights + card) into a ready predictor."""

from __future__ import annotations

from functools import cache as functools_cache
from functools import cached_property
from pathlib import Path

import numpy as np

from mmscore.errors import InvalidModelError, first_line
from mmscore.images.decode import unit_pixels_tensor
from mmscore.model.card import CARD_FILE, HEAD_FILE, ModelCard
from mmscore.model.domain import load_domain
from mmscore.model.head_inputs import head_inputs, lexical_width
from mmscore.model.pair_reader import PAIR_READER_FILE, load_pair_reader
from mmscore.model.preprocessor import PairPreprocessor, visible_image_mask
from mmscore.model.second_head import load_second_head

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"


def apply_offsets(logits: np.ndarray, offsets, temperature: float = 1.0) -> np.ndarray:
    """Probabilities: softmax of the logits shifted by the decision offsets (tuned for macro-F1), divided by
    the calibration temperature. A positive temperature never changes the argmax."""
    from mmscore.metrics import softmax

    z = np.asarray(logits, np.float64) + np.asarray(offsets, np.float64)
    return softmax(z / float(temperature)).astype(np.float32)


class Predictor:
    """Encoders named by the card + the trained head; probabilities in the contract's label order.

    >>> predictor = Predictor.load()            # the default model shipped with mmscore
    >>> probs = predictor.predict_embeddings(t1, t2, i1, i2, image_mask, predictor.pair_features(texts_1, texts_2))
    """

    def __init__(self, card: ModelCard, head, directory: Path | None = None, precision: str = "float32"):
        self.card = card
        self.precision = precision  # the text encoder's: "float32" or "bfloat16" (see mmscore.precision)
        self.head = head
        self.directory = directory
        self.offsets = np.asarray(card.decision_offsets, np.float32)
        self.temperature = float(card.temperature)
        self.domain = load_domain(directory)  # None: a model without an in-domain reference
        self.second_head = load_second_head(directory) if self.domain is not None else None

    @classmethod
    def load(cls, directory: Path | str | None = None, precision: str = "float32") -> Predictor:
        """The model in ``directory`` (default: the shipped one); ``precision`` auto|float32|bfloat16 for the
        text encoder."""
        import keras

        import mmscore.model.entailment_head  # noqa: F401  (registers the head's layers)
        from mmscore.precision import resolve_precision

        directory = Path(directory) if directory else DEFAULT_MODEL_DIR
        if not (directory / HEAD_FILE).is_file():
            raise InvalidModelError(f"{directory} is not an mmscore model directory (no {HEAD_FILE} / {CARD_FILE})")
        card = ModelCard.load(directory)
        try:
            # safe_mode: a head.keras holding a Lambda (pickled Python code) is refused, never run.
            head = keras.saving.load_model(directory / HEAD_FILE, compile=False, safe_mode=True)
        except (ValueError, TypeError, OSError, KeyError) as exc:
            raise InvalidModelError(f"{directory / HEAD_FILE}: refused to load ({first_line(exc, 200)})") from exc
        if card.text_encoder_weights and not (directory / card.text_encoder_weights).is_file():
            raise InvalidModelError(f"{directory}: fine-tuned text encoder weights {card.text_encoder_weights} missing")
        if (directory / "out_of_domain.npz").is_file() and not (directory / PAIR_READER_FILE).is_file():
            raise InvalidModelError(f"{directory}: its second head needs {PAIR_READER_FILE}, which is missing")
        if bool(card.pair_features) != bool(lexical_width(head)):
            raise InvalidModelError(f"{directory}: the card's pair_features and the head's inputs disagree")
        return cls(card, head, directory, resolve_precision(precision))

    def pair_features(self, text_1, text_2) -> np.ndarray:
        """The lexical features this model's head takes, ``(n, 0)`` when it takes none."""
        return PairPreprocessor(self.card.pair_features).pair_features(text_1, text_2)

    @cached_property
    def preprocessor(self) -> PairPreprocessor:
        """Texts -> this model's text inputs (tokens for its text encoder, its lexical features)."""
        return PairPreprocessor(self.card.pair_features, self.text_encoder)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Head logits -> calibrated probabilities in label order (offsets, then temperature)."""
        return apply_offsets(logits, self.offsets, self.temperature)

    def judge_with_second_head(self, probs, domain, vectors_1, vectors_2, texts_1, texts_2):
        """``(probs, taken)``: ``probs`` with the rows its second head takes (see
        :mod:`mmscore.model.second_head`) labelled by it, and which rows those are; ``domain``: the rows'
        ``(in_domain_score, in_domain)``. Unchanged, none taken, for a model without a second head."""
        if self.second_head is None:
            return probs, np.zeros(len(probs), bool)
        return self.second_head.judge(probs, domain, vectors_1, vectors_2, texts_1, texts_2, self.nli_probabilities)

    @cached_property
    def pair_reader(self):
        """The model's pair reader (:mod:`mmscore.model.pair_reader`), or None for a model without one."""
        from mmscore.precision import encoder_dtype

        return load_pair_reader(self.directory, encoder_dtype(self.precision))

    def nli_probabilities(self, texts_1, texts_2) -> np.ndarray:
        """``(n, 3)``: entailment, neutral, contradiction, as this model's pair reader reads each pair."""
        if self.pair_reader is None:
            raise InvalidModelError(f"{self.directory}: this model has no pair reader ({PAIR_READER_FILE})")
        return self.pair_reader.probabilities(list(texts_1), list(texts_2))

    @property
    def lexical_width(self) -> int:
        """How many lexical features per row this model's head takes (0: none); :meth:`pair_features` gives them."""
        return lexical_width(self.head)

    def _head_inputs(self, text_1, text_2, image_1, image_2, image_mask, pair_features) -> dict:
        image_mask = visible_image_mask(image_mask, self.card.uses_images)
        lexical = pair_features if self.card.pair_features else None
        return head_inputs(text_1, text_2, image_1, image_2, image_mask, lexical)

    @cached_property
    def text_encoder(self):
        from mmscore.encoders import registry
        from mmscore.precision import encoder_dtype

        card, dtype = self.card, encoder_dtype(self.precision)
        if not card.text_encoder_weights:
            encoder = registry.text_encoder(card.text_encoder, card.sequence_length, dtype)
            card.check_encoder("text", encoder)
            return encoder
        encoder = registry.build_text_encoder(card.text_encoder, card.sequence_length, dtype)  # not the shared one
        card.check_encoder("text", encoder)  # the pretrained weights the tuned ones started from
        encoder.backbone.load_weights(self.directory / self.card.text_encoder_weights)
        return encoder

    @cached_property
    def image_encoder(self):
        from mmscore.encoders import registry
        from mmscore.precision import encoder_dtype

        encoder = registry.image_encoder(self.card.image_encoder, encoder_dtype(self.precision))
        self.card.check_encoder("image", encoder)
        return encoder

    def predict_embeddings(self, text_1, text_2, image_1, image_2, image_mask, pair_features) -> np.ndarray:
        inputs = self._head_inputs(text_1, text_2, image_1, image_2, image_mask, pair_features)
        return self.probabilities(self.head.predict(inputs, verbose=0, batch_size=1024))

    @cached_property
    def scoring_step(self):
        """A compiled function: one tokenised, decoded batch (+ its :meth:`pair_features`) -> ``(head logits,
        text_1 vectors, text_2 vectors)``; the vectors place each pair among the training pairs (:attr:`domain`)."""
        import tensorflow as tf

        text_model = self.text_encoder.model
        image_model = self.image_encoder.model
        head = self.head
        head_inputs = self._head_inputs
        feature_dim = self.image_encoder.dim
        uses_images = self.card.uses_images

        @tf.function(reduce_retracing=True)
        def step(ids_1, mask_1, ids_2, mask_2, image_1, image_2, image_mask, pair_features):
            n = tf.shape(ids_1)[0]
            ids = tf.concat([ids_1, ids_2], 0)
            mask = tf.concat([mask_1, mask_2], 0)
            # Attention is masked, so trimming common padding changes nothing but the cost.
            longest = tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), 1))
            length = tf.minimum(tf.shape(ids)[1], (longest + 7) // 8 * 8)
            texts = text_model([ids[:, :length], mask[:, :length]], training=False)
            image_mask = visible_image_mask(image_mask, uses_images)
            # Run the image encoder only on images that exist; missing ones stay zero and masked.
            images = tf.concat([image_1, image_2], 0)
            present = tf.concat([image_mask[:, 0], image_mask[:, 1]], 0) > 0
            where = tf.cast(tf.where(present), tf.int32)
            shape = tf.stack([2 * n, feature_dim])

            def encode_present():
                pixels = unit_pixels_tensor(tf.gather_nd(images, where))
                return tf.scatter_nd(where, image_model(pixels, training=False)["features"], shape)

            # An empty batch trips oneDNN's batch norm, and there is nothing to encode anyway.
            features = tf.cond(tf.size(where) > 0, encode_present, lambda: tf.zeros(shape))
            inputs = head_inputs(texts[:n], texts[n:], features[:n], features[n:], image_mask, pair_features)
            return head(inputs, training=False), texts[:n], texts[n:]

        return step


@functools_cache
def shared_predictor(directory: str | Path | None = None, precision: str = "auto") -> Predictor:
    """One loaded :class:`Predictor` per model directory and precision, for callers that score again and again."""
    return Predictor.load(directory, precision)
