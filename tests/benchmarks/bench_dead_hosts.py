"""Dead image hosts: what they cost the scoring pipeline's chunk preparation (fetch + decode).

Run on demand:  .venv/bin/python tests/benchmarks/bench_dead_hosts.py [DNS_TIMEOUT_SECONDS]
Host names under ``.bench.test`` are answered inside this process: ``live*`` names resolve to 127.0.0.1,
where a local server answers every image after 50 ms; ``dead*`` names never answer (the lookup hangs), as
for a host whose name server is gone. Nothing leaves the machine.

(A) 10,000 references to one dead host, in the pipeline's chunks of 512 references.
(B) 1,000 references over 50 hosts, 10 of them dead, against the same run's 800 live references alone, at
    4, 16, 32 and 64 workers.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from mmscore.images.fetcher import ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.images.url_policy import UrlPolicy
from mmscore.scoring.chunks import prepare_chunk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fetch import LATENCY, start_server  # noqa: E402  (the benchmarks' shared local image server)

WORKERS = 16
CHUNK = 512
_real_getaddrinfo = socket.getaddrinfo


def _bench_getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.endswith(".bench.test"):
        if name.startswith("dead"):
            time.sleep(30)  # a name server that never answers (the system resolver gives up after ~30 s)
        return _real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


DNS_TIMEOUT = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0  # seconds; mmscore's default


def prepare_all(urls: list[str], tmp: Path, workers: int = WORKERS) -> tuple[float, dict]:
    """Seconds for the pipeline's chunk preparation of ``urls`` with a fresh fetcher, and the status counts."""
    fetcher = ImageFetcher(
        ImageCache(tmp / f"cache-{time.monotonic_ns()}"),
        UrlPolicy(allowed_networks=["127.0.0.1/32"], resolve_timeout=DNS_TIMEOUT),
        pool_size=workers,
    )
    counts: dict[str, int] = {}
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for lo in range(0, len(urls), CHUNK):
            part = urls[lo : lo + CHUNK]
            table = pa.table({"text_1": ["a"] * len(part), "text_2": ["b"] * len(part), "image_1": part})
            for status in prepare_chunk(table, fetcher, pool, 224).statuses["image_1_status"]:
                counts[status] = counts.get(status, 0) + 1
    return time.perf_counter() - started, counts


def main() -> None:
    socket.getaddrinfo = _bench_getaddrinfo
    server = start_server(_png(), "image/png")
    port = server.server_address[1]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dead_only = [f"http://dead00.bench.test:{port}/{i}.png" for i in range(10_000)]
        seconds, counts = prepare_all(dead_only, tmp)
        print(f"(A) 10,000 references to a host whose DNS never answers: {seconds:.1f} s  {counts}")

        hosts = [f"live{h:02d}" for h in range(40)] + [f"dead{h:02d}" for h in range(10)]
        mixed = [f"http://{hosts[h]}.bench.test:{port}/{i}.png" for i, h in enumerate(rng.integers(0, 50, 1000))]
        live = [u for u in mixed if "//live" in u]
        print(f"(B) {len(live)} live references alone, and among {len(mixed) - len(live)} to 10 dead hosts (40 live)")
        columns = ("workers", 8), ("bound/s", 8), ("live alone/s", 13), ("of bound", 9), ("among dead/s", 13)
        print(" ".join(f"{name:>{width}}" for name, width in (*columns, ("ratio", 6), ("+s", 6))))
        for workers in (4, 16, 32, 64):
            live_seconds, _ = prepare_all(live, tmp, workers)
            mixed_seconds, mixed_counts = prepare_all(mixed, tmp, workers)
            bound = workers / LATENCY
            live_rate, mixed_rate = len(live) / live_seconds, len(live) / mixed_seconds
            print(
                f"{workers:>8} {bound:>8.0f} {live_rate:>13.0f} {live_rate / bound:>9.2f} {mixed_rate:>13.0f} "
                f"{mixed_rate / live_rate:>6.2f} {mixed_seconds - live_seconds:>6.1f}  {mixed_counts}"
            )
    server.shutdown()
    sys.stdout.flush()
    os._exit(0)  # hung lookups are still sleeping in their threads: do not wait for them


if __name__ == "__main__":
    main()
