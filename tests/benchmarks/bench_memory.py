"""Peak memory of `mmscore score` on a small and a 10x larger input: streaming means they match.

Run on demand:  .venv/bin/python tests/benchmarks/bench_memory.py [SMALL_ROWS] [LARGE_ROWS]
(defaults 10000 and 100000; the larger run takes ~15 minutes on a 2-core CPU).
Each run is a separate `mmscore score` process with the shipped model; its peak RSS comes from
wait4(). Rows are short texts; every 100th row has a local image, so the image path is exercised.
Target: the larger run's peak RSS within 1.1x of the smaller's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def make_input(root: Path, rows: int) -> Path:
    """A Parquet file of ``rows`` synthetic pairs, written in row groups (never all in memory)."""
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(root / f"img{i}.jpg")
    path = root / f"pairs-{rows}.parquet"
    with pq.ParquetWriter(path, pa.schema([(c, pa.string()) for c in ("id", "text_1", "text_2", "image_1")])) as w:
        for lo in range(0, rows, 10_000):
            ids = range(lo, min(rows, lo + 10_000))
            w.write_table(
                pa.table(
                    {
                        "id": [str(10**18 + i) for i in ids],
                        "text_1": [f"the bridge {i} is closed after the storm" for i in ids],
                        "text_2": [f"officials say bridge {i % 50} reopens today" for i in ids],
                        "image_1": [f"img{i % 4}.jpg" if i % 100 == 0 else "" for i in ids],
                    }
                )
            )
    return path


def peak_rss_mb(input_path: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one `mmscore score` run."""
    command = [sys.executable, "-m", "mmscore.cli", "score", str(input_path), "-o", str(out), "--batch-size", "128"]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"mmscore score failed on {input_path}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:3]] or [10_000, 100_000]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        for rows in sizes:
            rss, seconds = peak_rss_mb(make_input(root, rows), root / f"out-{rows}.parquet")
            assert pq.ParquetFile(root / f"out-{rows}.parquet").metadata.num_rows == rows
            results[rows] = rss
            print(f"{rows:>8} rows: peak RSS {rss:7.0f} MB, {seconds:6.1f} s ({rows / seconds:.0f} rows/s)", flush=True)
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"ratio large/small: {large / small:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
