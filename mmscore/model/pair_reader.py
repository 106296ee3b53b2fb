"""The pair reader: a cross-encoder that reads both texts of a pair together and says entailment / neutral /
contradiction.

A bi-encoder places a statement and its negation close together ("the concert is cancelled" / "the concert goes
ahead"), so no head over two sentence vectors can tell Implies from Contradictory. The pair reader packs the two
texts as one sequence, ``[CLS] text_1 [SEP] text_2 [SEP]`` with segment ids 0 / 1, through all-MiniLM-L6-v2 (the
text encoder mmscore already installs), mean-pools the tokens and classifies them.

Only what training changed is kept (``pair_reader.npz``): the transformer layers and the classifier (float16), or a
LoRA adapter and the classifier, never the embeddings. The base weights come from the installed package and are
checked by hash before the kept weights are laid over them, so a pair reader never runs on other weights.

Its probabilities come in :data:`NLI_LABELS` order (entailment, neutral, contradiction): SNLI's meaning, where a
hypothesis about another scene is a contradiction. :mod:`mmscore.model.second_head` maps them onto mmscore's labels.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mmscore.errors import InvalidModelError, first_line

PAIR_READER_FILE = "pair_reader.npz"
NLI_LABELS = ("entailment", "neutral", "contradiction")
LORA_TARGETS = ("query", "key", "value", "attention_output", "feedforward_intermediate_dense",
                "feedforward_output_dense")  # fmt: skip
# Never trained, never shipped: the embedding tables, and BERT's pooler (this checkpoint never trained it either).
FROZEN = ("token_embedding", "position_embedding", "segment_embedding", "pooled_dense")
MINILM, MPNET = "minilm-l6-v2", "mpnet-base-v2"  # the transformers a pair reader can be built on
ENCODERS = (MINILM, MPNET)
MAX_TOKENS = 128  # a packed pair longer than this loses tokens from its longer text (SNLI pairs: 27 on average)
BATCH = 64


@dataclass(frozen=True)
class PairReaderConfig:
    """How a pair reader was built: what loading needs to rebuild the same network."""

    lora_rank: int = 0  # 0: the transformer layers were tuned in full
    max_tokens: int = MAX_TOKENS
    base_weights_sha256: str = ""  # the installed package weights it was trained from (mmscore.encoders.base)
    encoder: str = MINILM  # the transformer it reads with (files written before this field: MiniLM)


class PairFormat(NamedTuple):
    """How an encoder packs a pair of texts: BERT's ``[CLS] a [SEP] b [SEP]`` padded with 0, or MPNet's
    ``<s> a </s></s> b </s>`` padded with 1."""

    cls: int
    sep: int
    pad: int = 0
    seps_between: int = 1


def reader_tokenizer(encoder: str):
    """``(tokenizer, PairFormat)`` of a pair reader's encoder."""
    if encoder == MPNET:
        from mmscore.encoders import mpnet

        return mpnet.tokenizer(), PairFormat(mpnet.CLS, mpnet.SEP, mpnet.PAD, 2)
    if encoder != MINILM:
        raise InvalidModelError(f"unknown pair reader encoder {encoder!r}; known: {', '.join(ENCODERS)}")
    from mmscore.encoders.text_minilm import tokenizer

    minilm = tokenizer()
    return minilm, PairFormat(minilm.cls_token_id, minilm.sep_token_id)


def pack_pairs(ids_1: list[np.ndarray], ids_2: list[np.ndarray], fmt: PairFormat, max_tokens: int):
    """Token ids of two texts per pair -> ``(token_ids, segment_ids)`` int32, padded to the longest packed pair as
    ``fmt`` says; a pair longer than ``max_tokens`` drops tokens from the end of its longer text."""
    budget = max_tokens - 2 - fmt.seps_between
    rows = []
    for a, b in zip(ids_1, ids_2, strict=True):
        a, b = list(a), list(b)
        while len(a) + len(b) > budget:
            (a if len(a) >= len(b) else b).pop()
        rows.append(([fmt.cls, *a, *[fmt.sep] * fmt.seps_between], [*b, fmt.sep]))
    width = max((len(a) + len(b) for a, b in rows), default=1)
    width = -(-width // 8) * 8  # a few shapes only: the compiled step is not retraced for every length
    token_ids = np.full((len(rows), width), fmt.pad, np.int32)
    segment_ids = np.zeros((len(rows), width), np.int32)
    for i, (a, b) in enumerate(rows):
        token_ids[i, : len(a) + len(b)] = a + b
        segment_ids[i, len(a) : len(a) + len(b)] = 1
    return token_ids, segment_ids


def token_lists(tokenizer, texts) -> list[np.ndarray]:
    """Each text's word-piece ids (no special tokens), as int32 arrays; a missing text is empty."""
    texts = ["" if t is None else str(t) for t in texts]
    if not texts:
        return []
    rows = tokenizer(texts)
    rows = rows.to_list() if hasattr(rows, "to_list") else rows  # a RaggedTensor inside TensorFlow, else lists
    return [np.asarray(row, np.int32) for row in rows]


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of similar length (padding is most of the cost of short pairs)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def read_pairs(step, ids_1, ids_2, fmt: PairFormat, max_tokens: int, batch_size: int = BATCH) -> np.ndarray:
    """``(n, 3)`` float32 probabilities of tokenised pairs: packed in batches of similar length and read by
    ``step(token_ids, segment_ids)`` (which returns probabilities), each row back in its place."""
    out = np.zeros((len(ids_1), len(NLI_LABELS)), np.float32)
    lengths = np.array([len(a) + len(b) for a, b in zip(ids_1, ids_2, strict=True)])
    for rows in length_batches(lengths, batch_size):
        token_ids, segment_ids = pack_pairs([ids_1[i] for i in rows], [ids_2[i] for i in rows], fmt, max_tokens)
        out[rows] = np.asarray(step(token_ids, segment_ids), np.float32)
    return out


def read_meta(path: Path | str) -> dict:
    """A pair reader file's ``config`` and ``facts`` (what its training recorded), without loading its weights."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(bytes(z["meta"]).decode())


def _minilm_sequence(config: PairReaderConfig, dtype: str | None, token_ids, segment_ids):
    """MiniLM from its package (LoRA or trainable layers as ``config`` says) over the packed pair."""
    import keras
    import keras_hub

    from mmscore.encoders.text_minilm import model_dir

    backbone = keras_hub.models.BertBackbone.from_preset(str(model_dir()), **({"dtype": dtype} if dtype else {}))
    if config.lora_rank:
        backbone.enable_lora(config.lora_rank, list(LORA_TARGETS))
    for name in FROZEN:
        backbone.get_layer(name).trainable = False
    mask = keras.ops.not_equal(token_ids, 0)
    inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": mask}
    return backbone, backbone(inputs)["sequence_output"], mask


def _mpnet_sequence(config: PairReaderConfig, dtype: str | None, token_ids):
    """all-mpnet-base-v2 from its packages (LoRA or trainable layers as ``config`` says); it has no segments."""
    import keras

    from mmscore.encoders import mpnet

    backbone = mpnet.build_backbone(dtype)
    mpnet.load_pretrained(backbone)
    if config.lora_rank:
        for layer in mpnet.lora_layers(backbone):
            layer.enable_lora(config.lora_rank)
    for name in mpnet.FROZEN:
        backbone.get_layer(name).trainable = False
    return backbone, backbone(token_ids), keras.ops.not_equal(token_ids, mpnet.PAD)


def build_network(config: PairReaderConfig, dtype: str | None = None):
    """``(network, backbone)``: the encoder from its package, LoRA or trainable layers as ``config`` says, mean
    pooling and a 3-way classifier. ``network`` maps ``[token_ids, segment_ids]`` to float32 logits."""
    import keras

    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
    if config.encoder == MPNET:
        backbone, sequence, mask = _mpnet_sequence(config, dtype, token_ids)
    else:
        backbone, sequence, mask = _minilm_sequence(config, dtype, token_ids, segment_ids)
    weights = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    pooled = keras.ops.sum(keras.ops.cast(sequence, "float32") * weights, 1) / keras.ops.sum(weights, 1)
    logits = keras.layers.Dense(len(NLI_LABELS), dtype="float32", name="nli_logits")(pooled)
    return keras.Model([token_ids, segment_ids], logits, name="pair_reader"), backbone


def kept_weights(network) -> dict[str, np.ndarray]:
    """What training changed, by variable path."""
    return {v.path: np.asarray(v.numpy()) for v in network.trainable_weights}


def save_pair_reader(path: Path, network, config: PairReaderConfig, facts: dict | None = None) -> None:
    weights = kept_weights(network)
    if not config.lora_rank:  # 10.6 M numbers: float16 halves the file (dev accuracy is measured before rounding)
        weights = {k: v.astype(np.float16) for k, v in weights.items()}
    arrays = {f"w/{k}": v for k, v in weights.items()}
    meta = {"config": asdict(config), "facts": facts or {}}
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    tmp.replace(path)


class PairReader:
    """A loaded pair reader. ``probabilities(texts_1, texts_2)`` -> ``(n, 3)`` in :data:`NLI_LABELS` order."""

    def __init__(self, network, tokenizer, config: PairReaderConfig, facts: dict, fmt: PairFormat):
        self.network, self.tokenizer, self.config, self.facts, self.fmt = network, tokenizer, config, facts, fmt

    @classmethod
    def load(cls, path: Path | str, dtype: str | None = None) -> PairReader:
        path = Path(path)
        meta, config, weights = read_kept(path)
        network, _ = build_network(config, dtype)
        if config.base_weights_sha256 and config.base_weights_sha256 != base_weights_sha256(network):
            raise InvalidModelError(f"{path}: trained from other {config.encoder} weights than the installed package's")
        lay_weights(network, weights, path)
        tokenizer, fmt = reader_tokenizer(config.encoder)
        return cls(network, tokenizer, config, meta.get("facts", {}), fmt)

    def token_ids(self, texts) -> list[np.ndarray]:
        return token_lists(self.tokenizer, texts)

    @cached_property
    def _step(self):
        import tensorflow as tf

        network = self.network

        @tf.function(reduce_retracing=True)
        def step(token_ids, segment_ids):
            return tf.nn.softmax(network([token_ids, segment_ids], training=False), -1)

        return step

    def probabilities(self, texts_1, texts_2, batch_size: int = BATCH) -> np.ndarray:
        """``(n, 3)`` float32 rows summing to 1: entailment, neutral, contradiction."""
        ids_1, ids_2 = self.token_ids(texts_1), self.token_ids(texts_2)
        return read_pairs(self._step, ids_1, ids_2, self.fmt, self.config.max_tokens, batch_size)


def read_kept(path: Path) -> tuple[dict, PairReaderConfig, dict[str, np.ndarray]]:
    """A pair reader file's ``(meta, config, kept weights by variable path)``; one line naming it if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            weights = {k[2:]: z[k] for k in z.files if k.startswith("w/")}
        return meta, PairReaderConfig(**meta["config"]), weights
    except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidModelError(f"{path}: not a pair reader this version can read ({first_line(exc, 200)})") from exc


def lay_weights(network, weights: dict[str, np.ndarray], path: Path) -> None:
    """Lay a file's kept weights over a network built with the same config; damaged or foreign ones are refused."""
    variables = {v.path: v for v in network.trainable_weights}
    if set(variables) != set(weights):
        raise InvalidModelError(f"{path}: its weights do not fit the pair reader network (damaged or foreign)")
    for name, value in weights.items():
        if tuple(variables[name].shape) != value.shape or not np.isfinite(value).all():
            raise InvalidModelError(f"{path}: weight {name} is damaged (shape or non-finite values)")
        variables[name].assign(value.astype(np.float32))


def base_weights_sha256(network) -> str:
    """The hash of the package weights the pair reader runs on untouched (its own file lays the rest over them)."""
    import hashlib

    digest = hashlib.sha256()
    for v in sorted(network.non_trainable_weights, key=lambda v: v.path):
        if "seed_generator" in v.path:  # dropout's random state, not a weight
            continue
        digest.update(v.path.encode())
        digest.update(np.ascontiguousarray(v.numpy(), np.float32).tobytes())
    return digest.hexdigest()


def load_pair_reader(directory: Path | None, dtype: str | None = None) -> PairReader | None:
    """The model directory's pair reader, or None for a model without one."""
    path = None if directory is None else Path(directory) / PAIR_READER_FILE
    if path is None or not path.is_file():
        return None
    return PairReader.load(path, dtype)
