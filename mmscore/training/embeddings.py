"""Labelled pairs read and embedded once (texts and images, cached by content): the rows every step trains on."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mmscore import statuses
from mmscore.errors import InputError
from mmscore.images.fetcher import ImageFetcher, image_reference
from mmscore.images.loading import load_images
from mmscore.io.pairs_reader import ROW_NOTE, open_pairs
from mmscore.labels import LABELS
from mmscore.model.embedding_cache import EmbeddingCache, cached_encode, content_key
from mmscore.model.head_inputs import head_inputs

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


PAIR_ARRAYS = ("text_1", "text_2", "image_1", "image_2", "image_mask")


@dataclass
class PairEmbeddings:
    text_1: np.ndarray
    text_2: np.ndarray
    image_1: np.ndarray
    image_2: np.ndarray
    image_mask: np.ndarray
    image_statuses: Counter = field(default_factory=Counter)
    encoded: Counter = field(default_factory=Counter)  # encoder calls this run, per modality
    pair_features: np.ndarray | None = None  # lexical features of the two texts, when the head takes them

    @classmethod
    def concatenate(cls, parts: list[PairEmbeddings]) -> PairEmbeddings:
        """The rows of ``parts`` one after another (statuses and encoder counts are not carried)."""
        arrays = [np.concatenate([getattr(p, name) for p in parts]) for name in PAIR_ARRAYS]
        features = None if parts[0].pair_features is None else np.concatenate([p.pair_features for p in parts])
        return cls(*arrays, pair_features=features)

    def subset(self, rows) -> PairEmbeddings:
        """The rows selected by ``rows`` (a mask or indices; statuses and encoder counts are kept)."""
        arrays = [getattr(self, name)[rows] for name in PAIR_ARRAYS]
        features = None if self.pair_features is None else self.pair_features[rows]
        return PairEmbeddings(*arrays, self.image_statuses, self.encoded, features)

    def head_inputs(self, rows=slice(None)) -> dict[str, np.ndarray]:
        lexical = None if self.pair_features is None else self.pair_features[rows]
        return head_inputs(*(getattr(self, name)[rows] for name in PAIR_ARRAYS), lexical)


def read_labelled_pairs(path: str | Path) -> tuple[pd.DataFrame, int]:
    """Labelled pairs as strings (ids intact), read by the scoring reader; rows with an empty text, an empty
    label (a review queue's rows nobody labelled) or a malformed CSV record are dropped and counted."""
    source = open_pairs(path)  # same checks as scoring: file type, readability, text columns
    if "label" not in source.schema.names:
        raise InputError(f"{path}: missing required column(s) label")
    table = pa.concat_tables(source.chunks(1 << 16), promote_options="default") if source.num_rows != 0 else None
    df = table.to_pandas() if table is not None else pd.DataFrame(columns=source.schema.names)
    malformed = df.pop(ROW_NOTE).eq(statuses.MALFORMED_ROW) if ROW_NOTE in df.columns else pd.Series(False, df.index)
    unlabelled = df["label"].isna() | df["label"].astype(str).str.strip().eq("")
    df = df[~unlabelled]  # a review queue's rows nobody labelled yet
    unknown = sorted(set(df["label"].astype(str)) - set(LABELS))
    if unknown:
        raise InputError(f"{path}: unknown label value(s) {unknown}; expected {', '.join(LABELS)}")
    texts_ok = df["text_1"].fillna("").str.strip().ne("") & df["text_2"].fillna("").str.strip().ne("")
    keep = texts_ok & ~malformed[~unlabelled]
    return df[keep].reset_index(drop=True), int((~keep).sum() + unlabelled.sum())


def image_refs(df: pd.DataFrame, side: int, images_dir: Path | None) -> list[str | None]:
    """Where each row's image comes from: ``<images_dir>/<id>.<ext>`` when a dir is given, else the column."""
    if images_dir is None:
        column = f"image_{side}"
        return list(df[column]) if column in df.columns else [None] * len(df)
    ids = df[f"id_{side}"] if f"id_{side}" in df.columns else [None] * len(df)
    present = {p.stem: p for p in Path(images_dir).resolve().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    return [str(present[str(i)]) if i is not None and str(i) in present else None for i in ids]


def embed_pairs(
    df: pd.DataFrame,
    images_dir: Path | None,
    fetcher: ImageFetcher,
    text_encoder,
    image_encoder,
    cache_root: Path | None = None,
) -> PairEmbeddings:
    """Text and image embeddings for every row, computed once and cached by content hash."""
    text_cache = EmbeddingCache(
        f"{text_encoder.name}-{text_encoder.version}-len{text_encoder.sequence_length}", cache_root
    )
    texts = list(df["text_1"]) + list(df["text_2"])
    text_vectors, text_calls = cached_encode(
        text_cache, [content_key(t) for t in texts], texts, text_encoder.encode, text_encoder.dim
    )
    n = len(df)
    image_cache = EmbeddingCache(f"{image_encoder.name}-{image_encoder.version}", cache_root)
    statuses: Counter = Counter()
    keys, pixels, rows = [], [], []
    refs = {side: [image_reference(r) for r in image_refs(df, side, images_dir)] for side in (1, 2)}
    # Fetched and decoded by the scoring stage itself (same statuses, same pixels, busy hosts deferred).
    with ThreadPoolExecutor(fetcher.pool_size, thread_name_prefix="mmscore-fetch") as pool:
        loaded = load_images(refs[1] + refs[2], fetcher, pool, image_encoder.image_size)
    for side in (1, 2):
        for row, ref in enumerate(refs[side]):
            decoded, status = loaded[ref]
            statuses[status] += 1
            if decoded is not None:
                keys.append(content_key(decoded.tobytes()))
                pixels.append(decoded)
                rows.append((side, row))
    image_vectors, image_calls = cached_encode(image_cache, keys, pixels, image_encoder.encode, image_encoder.dim)
    images = np.zeros((2, n, image_encoder.dim), np.float32)
    mask = np.zeros((n, 2), np.float32)
    for (side, row), vector in zip(rows, image_vectors, strict=True):
        images[side - 1, row] = vector
        mask[row, side - 1] = 1.0
    return PairEmbeddings(
        text_vectors[:n],
        text_vectors[n:],
        images[0],
        images[1],
        mask,
        statuses,
        Counter(text=text_calls, image=image_calls),
    )


def image_rows(emb: PairEmbeddings) -> int:
    """Training rows with at least one decoded image of their own."""
    return int((emb.image_mask.sum(1) > 0).sum())
