"""End to end from HTTP against local files: the same rows scored with their images served over loopback HTTP
(50 ms latency per image, every image a distinct URL, an empty cache) and read from local files.

Run on demand:  .venv/bin/python tests/benchmarks/bench_e2e_http.py [ROWS] [WORKERS]   (default 256, 16)

Rows: real tweet texts (``../shared/data/tweets``) with a real photo on both posts
(``../shared/data/images/mediaeval2016``), or synthetic texts and drawn photos when absent (said so). Prints
pairs/s for texts only, both images from local files, and both images over HTTP, with HTTP/local; then CPU ms
per image (fetch, cache, decode) from a file and over HTTP.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fetch import LATENCY, serve_elsewhere  # noqa: E402
from bench_score import photo_files, real_or_synthetic_texts  # noqa: E402


def rate(predictor, frame: pd.DataFrame, root: Path, tag: str, image_root: Path | None, workers: int) -> float:
    """Pairs/s of the local engine over ``frame`` with a fresh image cache (nothing fetched before)."""
    from mmscore.images.fetcher import ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.images.url_policy import UrlPolicy
    from mmscore.io.pairs_reader import open_pairs
    from mmscore.scoring.local_engine import score_pairs
    from mmscore.scoring.run import ScoreOptions

    data = root / f"{tag}.parquet"
    frame.to_parquet(data)
    fetcher = ImageFetcher(
        ImageCache(root / f"cache-{tag}"), UrlPolicy(allow_private=True), image_root=image_root, pool_size=workers
    )
    started = time.perf_counter()
    summary = score_pairs(open_pairs(data), root / f"{tag}-out.parquet", predictor, fetcher, ScoreOptions(32, workers))
    seconds = time.perf_counter() - started
    seen = pd.read_parquet(root / f"{tag}-out.parquet")[["image_1_status", "image_2_status"]]
    failed = int((~seen.isin(["ok", "cached", "missing"])).to_numpy().sum())
    assert failed == 0, seen.value_counts().head()
    return summary.rows / seconds


def cpu_per_image(refs_by_source: dict[str, tuple[list[str], Path | None]], root: Path, workers: int, server) -> None:
    """Process CPU ms per image of fetch + cache + decode (``load_images``, empty cache), per source; for HTTP
    also the server process's own (it shares this machine's cores in the end-to-end figures)."""
    from concurrent.futures import ThreadPoolExecutor

    from mmscore.images.fetcher import ImageFetcher
    from mmscore.images.image_cache import ImageCache
    from mmscore.images.loading import load_images
    from mmscore.images.url_policy import UrlPolicy

    def server_cpu() -> float:
        fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    print(f"CPU per image, fetch + cache + decode ({workers} workers):")
    for name, (refs, image_root) in refs_by_source.items():
        cache = ImageCache(root / f"cpu-{name.replace(' ', '_')}")
        fetcher = ImageFetcher(cache, UrlPolicy(allow_private=True), image_root=image_root, pool_size=workers)
        served, used = server_cpu(), time.process_time()
        with ThreadPoolExecutor(workers) as pool:
            loaded = load_images(refs, fetcher, pool, 224)
        assert {status for _pixels, status in loaded.values()} == {"ok"}
        ms, server_ms = 1000 * (time.process_time() - used) / len(refs), 1000 * (server_cpu() - served) / len(refs)
        print(f"  {name:12} {ms:5.2f} ms" + (f"  (server process: {server_ms:.2f} ms)" if server_ms else ""))


def main(rows: int = 256, workers: int = 16) -> None:
    from mmscore.model.predictor import Predictor
    from mmscore.precision import resolve_precision

    root = Path(tempfile.mkdtemp())
    text_1, text_2, texts_from = real_or_synthetic_texts(rows)
    photo_root, photos, photos_from = photo_files(root)
    local = root / "local"
    local.mkdir()
    names = []
    for i in range(2 * rows):  # a distinct file per image, as a distinct URL per image over HTTP
        name = f"{i}_{photos[(7 * i + 3) % len(photos)]}"
        shutil.copyfile(photo_root / name.split("_", 1)[1], local / name)
        names.append(name)
    server, port = serve_elsewhere(local)
    base = f"http://127.0.0.1:{port}"
    texts = {"text_1": text_1, "text_2": text_2}
    inputs = {
        "texts only": (pd.DataFrame(texts), None),
        "both images, local files": (
            pd.DataFrame({**texts, "image_1": names[:rows], "image_2": names[rows:]}),
            local,
        ),
        "both images, HTTP": (
            pd.DataFrame(
                {
                    **texts,
                    "image_1": [f"{base}/a/{n}" for n in names[:rows]],
                    "image_2": [f"{base}/b/{n}" for n in names[rows:]],
                }
            ),  # fmt: skip
            None,
        ),
    }
    predictor = Predictor.load(precision="auto")
    print(f"{rows} rows of {texts_from}; photos: {photos_from}")
    print(f"precision {resolve_precision('auto')}, {workers} fetch workers, {LATENCY * 1000:.0f} ms per HTTP image")
    warm = pd.DataFrame(texts).head(64)
    rate(predictor, warm, root, "warm", None, workers)  # trace the compiled step once
    rates = {}
    for name, (frame, image_root) in inputs.items():
        rates[name] = rate(predictor, frame, root, name.replace(" ", "_").replace(",", ""), image_root, workers)
        print(f"{name:26} {rates[name]:7.1f} pairs/s")
    http, files = rates["both images, HTTP"], rates["both images, local files"]
    print(f"HTTP / local files: {http / files:.2f}  (fetch bound alone: {workers / LATENCY / 2:.0f} pairs/s)")
    cpu_per_image(
        {"local file": (names, local), "HTTP": ([f"{base}/cpu/{n}" for n in names], None)}, root, workers, server
    )
    server.terminate()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
