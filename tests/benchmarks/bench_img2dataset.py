"""mmscore's fetch + decode + resize against img2dataset's, side by side in one run: the same local server
(50 ms latency, one 71 KB JPEG) in a process of its own, so neither tool shares an interpreter with it; the
same number of distinct URLs, the same thread counts, images resized to 224.

Run on demand:  .venv/bin/python tests/benchmarks/bench_img2dataset.py IMG2DATASET [IMAGES]

IMG2DATASET is the ``img2dataset`` command of a scratch virtual environment (it is not a dependency):

    python -m venv /tmp/i2d && /tmp/i2d/bin/pip install img2dataset
    .venv/bin/python tests/benchmarks/bench_img2dataset.py /tmp/i2d/bin/img2dataset 1000

img2dataset runs one process with N threads (``--processes_count 1 --thread_count N``) and writes files; its
images/s is its own stats' duration (start-up not counted). mmscore's is the scoring pipeline's chunk
preparation (fetch, decode, resize; nothing written) with N fetch workers, timed the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fetch import LATENCY, serve_elsewhere  # noqa: E402

from mmscore.images.fetcher import ImageFetcher  # noqa: E402
from mmscore.images.image_cache import ImageCache  # noqa: E402
from mmscore.images.url_policy import UrlPolicy  # noqa: E402
from mmscore.scoring.chunks import prepare_chunk  # noqa: E402


def img2dataset_rate(command: str, urls: list[str], threads: int, folder: Path) -> float:
    (folder / "urls.txt").write_text("\n".join(urls) + "\n")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}  # its image library would look for a newer version
    subprocess.run(
        [command, "--url_list", str(folder / "urls.txt"), "--input_format", "txt", "--output_folder",
         str(folder / "out"), "--output_format", "files", "--processes_count", "1", "--thread_count", str(threads),
         "--image_size", "224", "--retries", "0"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    stats = json.loads(next((folder / "out").glob("*_stats.json")).read_text())
    assert stats["successes"] == len(urls), stats
    return len(urls) / stats["duration"]


def mmscore_rate(urls: list[str], workers: int, folder: Path) -> float:
    fetcher = ImageFetcher(ImageCache(folder / "cache"), UrlPolicy(allow_private=True), pool_size=workers)
    table = pa.table({"text_1": ["a"] * len(urls), "text_2": ["b"] * len(urls), "image_1": urls})
    with ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        chunk = prepare_chunk(table, fetcher, pool, 224)
        seconds = time.perf_counter() - started
    assert set(chunk.statuses["image_1_status"]) == {"ok"}
    return len(urls) / seconds


def main(command: str, images: int = 1000) -> None:
    server, port = serve_elsewhere()
    base = f"http://127.0.0.1:{port}"
    print(f"{images} distinct URLs per run, {LATENCY * 1000:.0f} ms latency, resized to 224; images/s")
    print(f"{'threads':>8} {'bound':>6} {'img2dataset':>12} {'mmscore':>8} {'mmscore / img2dataset':>22}")
    for threads in (4, 16, 32, 64):
        with tempfile.TemporaryDirectory() as tmp:
            theirs = img2dataset_rate(
                command, [f"{base}/i/{threads}/{i}.jpg" for i in range(images)], threads, Path(tmp)
            )
            ours = mmscore_rate([f"{base}/m/{threads}/{i}.jpg" for i in range(images)], threads, Path(tmp))
        bound = threads / LATENCY
        print(f"{threads:>8} {bound:>6.0f} {theirs:>12.0f} {ours:>8.0f} {ours / theirs:>22.2f}")
    server.terminate()


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
