"""Scoring throughput on real tweets: today's fast configuration against the old one, in the same run.

Run on demand:  .venv/bin/python tests/benchmarks/bench_score.py [ROWS]   (default 384; 1260 = all real rows)

Rows are the real tweet texts of ``../shared/data/tweets`` (or, when absent, synthetic texts drawn to match
their length distribution, said so in the output). Two inputs: texts only, and with a real photo on both
posts (``../shared/data/images/mediaeval2016``, or drawn photos when absent). Two configurations:

- fast     : batches cut from rows sorted by token length, both encoders at ``--precision auto``,
             MobileNetV2 with BatchNorm folded into its convolutions;
- baseline : file-order batches, float32, unfolded MobileNetV2 (the configuration before these changes).

``MMSCORE_BENCH_NO_BF16=1`` makes ``--precision auto`` answer as on a CPU without native bf16 (float32), to
measure there what such a CPU runs (its arithmetic still differs: this one keeps AVX-512).

For each: end-to-end ``score_pairs`` pairs/s, the model step alone on the same prepared chunks (no fetching,
decoding or tokenising), the ratios, and the share of rows whose label differs between the two.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TWEETS = DATA / "tweets" / "tweets_trainval.csv"
PHOTOS = DATA / "images" / "mediaeval2016"


def real_or_synthetic_texts(rows: int) -> tuple[list[str], list[str], str]:
    """``rows`` pairs of real tweet texts, or synthetic texts with the real word-count distribution."""
    if TWEETS.is_file():
        frame = pd.read_csv(TWEETS, dtype=str).fillna("").head(rows)
        return list(frame["text_1"]), list(frame["text_2"]), f"real tweets ({TWEETS})"
    rng = np.random.default_rng(0)
    words = ["storm", "harbour", "bridge", "closed", "vote", "market", "rain", "city", "team", "won", "lost"]
    words += ["river", "train", "#news", "@user", "2016"]
    # Real tweets here: 25 words on average (sd ~11), at least 3.
    counts = np.clip(rng.normal(25, 11, 2 * rows).round().astype(int), 3, 60)
    texts = [" ".join(rng.choice(words, n)) for n in counts]
    return texts[:rows], texts[rows:], "SYNTHETIC texts (../shared/data absent), real word-count distribution"


def photo_files(root: Path) -> tuple[Path, list[str], str]:
    """The folder and names of the photos to attach: the real ones, or 16 drawn under ``root``."""
    from PIL import Image

    real = sorted(p for p in PHOTOS.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if real:  # read in place: the image root is that folder (a link to it would be refused as outside the root)
        return PHOTOS, [p.name for p in real], f"real photos ({PHOTOS})"
    rng = np.random.default_rng(1)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(root / f"drawn{i}.jpg")
    return root, [f"drawn{i}.jpg" for i in range(16)], "DRAWN noise photos (../shared/data absent)"


def bench_inputs(rows: int, root: Path) -> tuple[Path, dict[str, pd.DataFrame], str]:
    """``(image root, {"texts only": frame, "both images": frame}, what they hold)``: the benchmark's rows, photos
    named relative to the image root."""
    text_1, text_2, texts_from = real_or_synthetic_texts(rows)
    image_root, photos, photos_from = photo_files(root)
    inputs = {
        "texts only": pd.DataFrame({"text_1": text_1, "text_2": text_2}),
        "both images": pd.DataFrame(
            {
                "text_1": text_1,
                "text_2": text_2,
                "image_1": [photos[i % len(photos)] for i in range(len(text_1))],
                "image_2": [photos[(7 * i + 3) % len(photos)] for i in range(len(text_1))],
            }
        ),
    }
    return image_root, inputs, f"{len(text_1)} rows of {texts_from}; photos: {photos_from}"


def configure(predictor, fast: bool):
    """Switch ``predictor`` to the fast or the baseline configuration (text precision, image encoder)."""
    from mmscore.encoders.image_mobilenet import MobileNetImageEncoder
    from mmscore.precision import encoder_dtype, resolve_precision

    predictor.precision = resolve_precision("auto") if fast else "float32"
    predictor.__dict__.pop("text_encoder", None)
    predictor.__dict__.pop("scoring_step", None)
    dtype = encoder_dtype(predictor.precision)
    predictor.__dict__["image_encoder"] = (
        MobileNetImageEncoder(fold=True, dtype=dtype) if fast else MobileNetImageEncoder(fold=False)
    )
    return predictor


def measure(predictor, data: Path, root: Path, image_root: Path, fast: bool, tag: str) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from mmscore.images.fetcher import ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.io.pairs_reader import open_pairs
    from mmscore.scoring.chunks import ChunkScorer
    from mmscore.scoring.local_engine import score_pairs
    from mmscore.scoring.run import ScoreOptions

    configure(predictor, fast)
    fetcher = ImageFetcher(ImageCache(root / "cache"), image_root=image_root)
    options = ScoreOptions(batch_size=32, length_batches=fast)
    score_pairs(open_pairs(data), root / "warm.parquet", predictor, fetcher, ScoreOptions(32, limit=64))  # trace, warm
    out = root / f"{tag}.parquet"
    start = time.perf_counter()
    summary = score_pairs(open_pairs(data), out, predictor, fetcher, options)
    e2e = summary.rows / (time.perf_counter() - start)

    scorer = ChunkScorer(predictor, fetcher, options.batch_size, options.length_batches)
    with ThreadPoolExecutor(options.fetch_workers) as pool:
        chunks = [scorer.prepare(t, pool) for t in open_pairs(data).chunks(options.chunk_rows)]
    start = time.perf_counter()
    for chunk in chunks:
        scorer.score(chunk)
    step = sum(c.num_rows for c in chunks) / (time.perf_counter() - start)
    scored = pd.read_parquet(out)
    seen = scored[[c for c in ("image_1_status", "image_2_status") if c in scored]].isin(["ok", "cached"]).to_numpy()
    return {"e2e": e2e, "step": step, "labels": scored["pred_label"], "images_seen": int(seen.sum())}


def main(rows: int = 384) -> None:
    from mmscore import precision
    from mmscore.model.predictor import Predictor
    from mmscore.precision import resolve_precision

    if os.environ.get("MMSCORE_BENCH_NO_BF16"):
        precision.hardware_bf16 = lambda: False

    root = Path(tempfile.mkdtemp())
    image_root, inputs, described = bench_inputs(rows, root)
    predictor = Predictor.load()
    print(f"{described}; batch 32, chunk 256")
    print(f"fast = length-sorted batches + encoders in {resolve_precision('auto')} + folded MobileNetV2")
    print("baseline = file-order batches + float32 + unfolded MobileNetV2 (measured in this run)\n")
    print(f"model uses images: {predictor.card.uses_images}")
    print(f"{'input':12} {'config':9} {'e2e pairs/s':>12} {'step pairs/s':>13} {'e2e/step':>9}")
    for name, frame in inputs.items():
        data = root / f"{name.replace(' ', '_')}.parquet"
        frame.to_parquet(data)
        results = {}
        for fast in (False, True):
            tag = "fast" if fast else "baseline"
            results[tag] = r = measure(predictor, data, root, image_root, fast, f"{data.stem}-{tag}")
            print(
                f"{name:12} {tag:9} {r['e2e']:12.1f} {r['step']:13.1f} {r['e2e'] / r['step']:9.2f}"
                f"   images seen {r['images_seen']}"
            )
        fast, base = results["fast"], results["baseline"]
        changed = float((fast["labels"] != base["labels"]).mean())
        print(
            f"{name:12} speed-up e2e {fast['e2e'] / base['e2e']:.2f}x, step {fast['step'] / base['step']:.2f}x; "
            f"labels changed vs baseline: {100 * changed:.2f}% of {len(fast['labels'])} rows\n"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 384)
