"""Where scoring time goes, stage by stage, on real tweets: read, images (fetch + decode), tokenise, lexical
features, the model step (text and image encoders + head), of which the head alone, the in-domain score,
probabilities, and writing the output.

Run on demand:  .venv/bin/python tests/benchmarks/bench_stages.py [ROWS] [PRECISION]   (default 512 float32)

``float32`` is what ``--precision auto`` gives on a CPU without native bf16 (the stages are the same; only
the encoder's arithmetic differs). Stages run one after another on the same chunks, so each share is of the
sum; the scoring pipeline overlaps reading and images with the model step of the chunk before.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_score import photo_files, real_or_synthetic_texts  # noqa: E402


class Clock:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def time(self, stage: str, fn, *args):
        started = time.perf_counter()
        out = fn(*args)
        self.seconds[stage] += time.perf_counter() - started
        return out


def profile(predictor, data: Path, image_root: Path, root: Path) -> dict[str, float]:
    import pyarrow.parquet as pq

    from mmscore.contract import output_schema
    from mmscore.images.fetcher import ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.images.loading import load_images
    from mmscore.io.pairs_reader import open_pairs
    from mmscore.scoring.chunks import PreparedChunk, chunk_image_refs, image_cells, scored_table

    fetcher = ImageFetcher(ImageCache(root / f"cache-{time.monotonic_ns()}"), image_root=image_root)
    source = open_pairs(data)
    step, pre, head = predictor.scoring_step, predictor.preprocessor, predictor.head
    clock, writer = Clock(), None
    with ThreadPoolExecutor(16) as pool:
        for table in clock.time("read", lambda: list(source.chunks(256))):
            n = table.num_rows
            t1, t2 = (np.array(table.column(c).to_pylist(), dtype=object) for c in ("text_1", "text_2"))
            refs = image_cells(table)
            loaded = clock.time("images (fetch + decode)", load_images, chunk_image_refs(refs), fetcher, pool, 224)
            tokens = clock.time("tokenise", pre.tokens, t1, t2)
            features = clock.time("lexical features", pre.pair_features, t1, t2)
            images, mask = [], np.zeros((n, 2), np.float32)
            for side, column in enumerate(("image_1", "image_2")):
                pixels = np.zeros((n, 224, 224, 3), np.uint8)
                for row, ref in enumerate(refs.get(column, [None] * n)):
                    array = loaded.get(ref, (None, ""))[0] if ref is not None else None
                    if array is not None:
                        pixels[row], mask[row, side] = array, 1.0
                images.append(pixels)
            order = np.argsort(tokens.longest_per_row(), kind="stable")
            logits, v1, v2 = [], [], []
            for lo in range(0, n, 32):
                rows = order[lo : lo + 32]
                args = (*tokens.rows(rows), images[0][rows], images[1][rows], mask[rows], features[rows])
                out = clock.time("model step (encoders + head)", lambda a=args: [o.numpy() for o in step(*a)])
                logits.append(out[0]), v1.append(out[1]), v2.append(out[2])
            vectors = [np.concatenate(v)[np.argsort(order)] for v in (v1, v2)]
            inputs = predictor._head_inputs(vectors[0], vectors[1], np.zeros((n, 1280), np.float32),
                                            np.zeros((n, 1280), np.float32), mask * 0, features)  # fmt: skip
            clock.time("  of which: head alone", lambda i=inputs: np.asarray(head(i, training=False)))
            probs = clock.time("probabilities", predictor.probabilities, np.concatenate(logits)[np.argsort(order)])
            domain = clock.time("in-domain score", predictor.domain.score, *vectors, list(t1), list(t2))
            statuses = {"text_status": ["ok"] * n, "image_1_status": ["ok"] * n, "image_2_status": ["ok"] * n}
            chunk = PreparedChunk(table, images, mask, statuses, features, order, tokens, (list(t1), list(t2)))
            scored = clock.time("output table", scored_table, chunk, probs, domain)
            if writer is None:
                writer = pq.ParquetWriter(root / f"out-{time.monotonic_ns()}.parquet", output_schema(source.schema))
            clock.time("write Parquet", writer.write_table, scored)
    writer.close()
    return dict(clock.seconds)


def main(rows: int = 512, precision: str = "float32") -> None:
    from mmscore.model.predictor import Predictor

    root = Path(tempfile.mkdtemp())
    text_1, text_2, texts_from = real_or_synthetic_texts(rows)
    image_root, photos, photos_from = photo_files(root)
    predictor = Predictor.load(precision=precision)
    print(f"{len(text_1)} rows of {texts_from}; photos: {photos_from}; precision {predictor.precision}")
    texts = {"text_1": text_1, "text_2": text_2}
    frames = {
        "texts only": pd.DataFrame(texts),
        "both images": pd.DataFrame({**texts, "image_1": [photos[i % len(photos)] for i in range(len(text_1))],
                                     "image_2": [photos[(7 * i + 3) % len(photos)] for i in range(len(text_1))]}),
    }  # fmt: skip
    for name, frame in frames.items():
        data = root / f"{name.replace(' ', '_')}.parquet"
        frame.to_parquet(data)
        profile(predictor, data, image_root, root)  # warm: trace the step for every batch shape
        seconds = profile(predictor, data, image_root, root)
        step = seconds["model step (encoders + head)"]
        total = sum(v for k, v in seconds.items() if not k.startswith("  "))
        print(f"\n{name}: {len(frame) / total:.1f} pairs/s with the stages in sequence")
        print(f"{'stage':30} {'ms/row':>8} {'share':>7} {'vs step':>8}")
        for stage, s in seconds.items():
            share = "" if stage.startswith("  ") else f"{s / total:7.1%}"
            print(f"{stage:30} {1000 * s / len(frame):8.2f} {share:>7} {s / step:8.1%}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 512, sys.argv[2] if len(sys.argv) > 2 else "float32")
