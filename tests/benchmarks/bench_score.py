"""Scoring throughput on this machine: end-to-end vs the model alone vs a reference-style row loop.

Run on demand:  .venv/bin/python tests/benchmarks/bench_score.py [ROWS]
Prints pairs/s for (e2e) `score_pairs` with a warm image cache, (a) the scoring step alone on
ready-made tensors (upper bound), (b) one row at a time with per-row tokenisation and per-image
Pillow decode/resize in Python (how the keras.io example feeds its model), and the ratios.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def make_pairs(root: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(root / f"img{i}.jpg")
    words = [
        "harbour",
        "storm",
        "bridge",
        "closed",
        "open",
        "vote",
        "market",
        "rain",
        "city",
        "team",
        "won",
        "lost",
        "river",
        "train",
    ]
    texts = [" ".join(rng.choice(words, 18)) for _ in range(rows * 2)]
    df = pd.DataFrame(
        {
            "text_1": texts[:rows],
            "text_2": texts[rows:],
            "image_1": [f"img{i % 16}.jpg" for i in range(rows)],
            "image_2": [f"img{(i * 7) % 16}.jpg" for i in range(rows)],
        }
    )
    df.to_parquet(root / "pairs.parquet")
    return root / "pairs.parquet"


def main(rows: int = 256) -> None:
    import tensorflow as tf

    from mmscore.images.decode import decode_image
    from mmscore.images.fetcher import ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.io.pairs_reader import open_pairs
    from mmscore.model.predictor import Predictor
    from mmscore.pipeline import ScoreOptions, score_pairs

    root = Path(tempfile.mkdtemp())
    data = make_pairs(root, rows)
    predictor = Predictor.load()
    fetcher = ImageFetcher(ImageCache(root / "cache"), image_root=root)
    options = ScoreOptions(batch_size=32)
    score_pairs(open_pairs(data), root / "warm.parquet", predictor, fetcher, ScoreOptions(32, limit=64))  # warm-up

    start = time.perf_counter()
    score_pairs(open_pairs(data), root / "out.parquet", predictor, fetcher, options)
    e2e = rows / (time.perf_counter() - start)

    df = pd.read_parquet(data)
    size = predictor.image_encoder.image_size
    step = predictor.scoring_step
    images = np.stack([decode_image((root / p).read_bytes(), size).pixels for p in df["image_1"][:32]])
    ids1, m1 = predictor.text_encoder.tokenize(tf.constant(df["text_1"][:32].tolist()))
    ids2, m2 = predictor.text_encoder.tokenize(tf.constant(df["text_2"][:32].tolist()))
    mask = tf.ones((32, 2))
    lexical = predictor.pair_features(df["text_1"][:32].tolist(), df["text_2"][:32].tolist())
    step(ids1, m1, ids2, m2, images, images, mask, lexical)
    start = time.perf_counter()
    batches = rows // 32
    for _ in range(batches):
        step(ids1, m1, ids2, m2, images, images, mask, lexical).numpy()
    forward = batches * 32 / (time.perf_counter() - start)

    reference_rows = min(rows, 32)
    start = time.perf_counter()
    for row in df.head(reference_rows).itertuples():
        pics = []
        for ref in (row.image_1, row.image_2):
            with Image.open(io.BytesIO((root / ref).read_bytes())) as im:
                pics.append(np.asarray(im.convert("RGB").resize((size, size)), np.uint8))
        a, ma = predictor.text_encoder.tokenize(tf.constant([row.text_1]))
        b, mb = predictor.text_encoder.tokenize(tf.constant([row.text_2]))
        lexical = predictor.pair_features([row.text_1], [row.text_2])
        step(a, ma, b, mb, pics[0][None], pics[1][None], tf.ones((1, 2)), lexical).numpy()
    reference = reference_rows / (time.perf_counter() - start)

    print(f"rows {rows}, batch 32, images present on both sides, warm cache")
    print(f"end-to-end score_pairs : {e2e:7.1f} pairs/s")
    print(f"(a) model forward only : {forward:7.1f} pairs/s   e2e/(a) = {e2e / forward:.2f}")
    print(f"(b) reference row loop : {reference:7.1f} pairs/s   e2e/(b) = {e2e / reference:.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
