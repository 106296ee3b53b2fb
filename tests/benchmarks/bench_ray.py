"""Ray engine against the local engine on the same text-heavy input, in one run.

    .venv/bin/python tests/benchmarks/bench_ray.py [ROWS]      (default 1024; needs mmscore[ray])

Rows: real tweet texts from ../shared/data (synthetic texts of tweet length when absent), no images, written
as 8 Parquet files. Prints Ray's start-up cost (ray.init + first actor loading the model) apart from
rows/s, for the local engine and for Ray with 1 and 2 actors, and checks the outputs are identical.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TWEETS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tweets" / "tweets_trainval.csv"


def write_input(folder: Path, rows: int) -> None:
    if TWEETS.is_file():
        texts = pd.read_csv(TWEETS, dtype=str)[["text_1", "text_2"]].fillna("")
        texts = pd.concat([texts] * (rows // len(texts) + 1)).head(rows)
    else:
        print("(real tweets absent: synthetic texts of tweet length)")
        texts = pd.DataFrame({"text_1": [f"storm closes the harbour bridge {i} " * 4 for i in range(rows)]})
        texts["text_2"] = texts["text_1"].str.upper()
    per_file = -(-rows // 8)
    for i in range(8):
        texts.iloc[i * per_file : (i + 1) * per_file].to_parquet(folder / f"part-{i}.parquet", index=False)


def main(rows: int = 1024) -> None:
    import pyarrow.parquet as pq
    import ray

    import mmscore

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        write_input(root / "in", rows)
        scorer = mmscore.Scorer(precision="float32")
        started = time.perf_counter()
        scorer.score_file(root / "in", root / "warm.parquet", limit=64)  # trace the step outside the clock
        local = scorer.score_file(root / "in", root / "local.parquet")
        results = {"local": (rows / local.seconds, rows / local.seconds, 0.0)}
        t = time.perf_counter()
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - t
        for actors in (1, 2):
            t = time.perf_counter()
            scorer.score_file(root / "in", root / "warm_ray.parquet", limit=256, engine="ray",
                              actors=actors)  # fmt: skip
            # each run starts its actors (each loads the model): estimate that cost from a 256-row run
            startup = max(0.0, time.perf_counter() - t - 256 / results["local"][0])
            out = root / f"ray{actors}.parquet"
            summary = scorer.score_file(root / "in", out, engine="ray", actors=actors)
            same = pq.read_table(out).equals(pq.read_table(root / "local.parquet"))
            steady = rows / max(1e-9, summary.seconds - startup)
            results[f"ray, {actors} actor(s)"] = (rows / summary.seconds, steady, startup)
            print(f"ray {actors} actor(s): identical to local: {same}")
        ray.shutdown()
        print(f"\n{rows} text-only rows, {os.cpu_count()} CPUs; ray.init {init_seconds:.1f} s")
        print(f"{'engine':20} {'rows/s':>8} {'vs local':>9} {'without start':>14} {'actor start (est.)':>19}")
        base = results["local"][0]
        for name, (rate, steady, startup) in results.items():
            print(f"{name:20} {rate:8.1f} {rate / base:8.2f}x {steady:14.1f} {startup:17.1f} s")
        print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
