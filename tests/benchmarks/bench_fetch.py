"""Image fetch throughput against a local HTTP server that adds 50 ms latency to every image.

Run on demand:  .venv/bin/python tests/benchmarks/bench_fetch.py [IMAGES]
For several worker counts, prints images/s for (fetch) the fetcher alone into an empty cache and
(fetch+decode) the scoring pipeline's chunk preparation, against the bound workers / latency. All images come
from one host, which may use every worker (the per-host cap applies only while other hosts' images wait).
"""

from __future__ import annotations

import io
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from mmscore.images.fetcher import ImageFetcher
from mmscore.images.image_cache import ImageCache
from mmscore.images.url_policy import UrlPolicy
from mmscore.scoring.chunks import prepare_chunk

LATENCY = 0.05


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def start_server(
    body: bytes | None = None,
    content_type: str = "image/jpeg",
    latency: float = LATENCY,
    served: list | None = None,
    folder: Path | None = None,
) -> ThreadingHTTPServer:
    """A local server answering every GET with ``body`` (default: a 71 KB JPEG) after ``latency`` seconds, or
    with the file of ``folder`` named by the path's last part; ``served`` collects the time each answer was sent."""
    body = body or _jpeg()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse counts
        # TCP_NODELAY, as production servers set it (nginx's tcp_nodelay is on by default): the body goes out in a
        # write after the headers', and with Nagle on, its last small segment waited for the client's delayed ACK,
        # ~40 ms on some body sizes (92 ms a request instead of 52 for the real photos), a cost no CDN charges.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(latency)
            payload = body if folder is None else (folder / self.path.rsplit("/", 1)[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            if served is not None:
                served.append(time.perf_counter())

    class Server(ThreadingHTTPServer):
        request_queue_size = 256
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _serve(folder: Path | None, ports) -> None:
    ports.put(start_server(folder=folder).server_address[1])
    time.sleep(3600)


def serve_elsewhere(folder: Path | None = None):
    """The image server in a process of its own, as a real one is: its request handling does not hold this
    process's interpreter lock (both cases still share the machine's cores). Returns the process and its port;
    ``folder`` as in :func:`start_server`."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=_serve, args=(folder, ports), daemon=True)
    process.start()
    return process, ports.get(timeout=60)


def main() -> None:
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 640
    server = start_server()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"{images} distinct images, {LATENCY * 1000:.0f} ms server latency, {len(_jpeg()) // 1024} KB JPEG each")
    print(f"{'workers':>8} {'bound/s':>8} {'fetch/s':>8} {'ratio':>6} {'fetch+decode/s':>15} {'ratio':>6}")
    for workers in (4, 16, 32, 64):
        bound = workers / LATENCY
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
            policy = UrlPolicy(allow_private=True)
            fetcher = ImageFetcher(ImageCache(Path(tmp) / "a"), policy, pool_size=workers)
            urls = [f"{base}/a/{workers}/{i}.jpg" for i in range(images)]
            started = time.perf_counter()
            # one host and nothing else waiting: the fetcher may use every worker (as load_images tells it)
            statuses = [f.status for f in pool.map(lambda url, f=fetcher: f.fetch(url, alone=True), urls)]
            fetch_rate = images / (time.perf_counter() - started)
            assert set(statuses) == {"ok"}, set(statuses)

            fetcher = ImageFetcher(ImageCache(Path(tmp) / "b"), policy, pool_size=workers)
            table = pa.table({"text_1": ["a"] * images, "text_2": ["b"] * images,
                              "image_1": [f"{base}/b/{workers}/{i}.jpg" for i in range(images)]})  # fmt: skip
            started = time.perf_counter()
            chunk = prepare_chunk(table, fetcher, pool, 224)
            prepare_rate = images / (time.perf_counter() - started)
            assert set(chunk.statuses["image_1_status"]) == {"ok"}
        print(
            f"{workers:>8} {bound:>8.0f} {fetch_rate:>8.0f} {fetch_rate / bound:>6.2f} "
            f"{prepare_rate:>15.0f} {prepare_rate / bound:>6.2f}"
        )
    server.shutdown()
    mixed_hosts(images)


def mixed_hosts(images: int, slow_latency: float = 0.5) -> None:
    """Ten hosts (ten servers), one slow: how fast the nine live hosts' images are served with the slow host's
    images interleaved, against the same images alone, at each worker count (the pipeline's load_images)."""
    from mmscore.images.loading import load_images

    served: list[float] = []
    servers = [start_server(latency=LATENCY, served=served) for _ in range(9)] + [start_server(latency=slow_latency)]
    bases = [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    print(f"\n10 hosts, one answering after {slow_latency * 1000:.0f} ms: the live hosts' images/s (until the last")
    print("live image is served) with and without the slow host's images interleaved (one in ten)")
    print(f"{'workers':>8} {'live alone/s':>13} {'live among slow/s':>18} {'ratio':>6}")
    for workers in (4, 16, 32, 64):
        rates = []
        for with_slow in (False, True):
            live = [f"{bases[i % 9]}/live/{workers}/{with_slow}/{i}.jpg" for i in range(images)]
            slow = [f"{bases[9]}/slow/{workers}/{i}.jpg" for i in range(images // 10)] if with_slow else []
            refs = [r for pair in zip(live, slow + [None] * len(live), strict=False) for r in pair if r]
            served.clear()
            with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
                fetcher = ImageFetcher(ImageCache(Path(tmp)), UrlPolicy(allow_private=True), pool_size=workers)
                started = time.perf_counter()
                results = load_images(refs, fetcher, pool, 32)
                assert {status for _p, status in results.values()} == {"ok"}
            rates.append(len(live) / (max(served) - started))
        print(f"{workers:>8} {rates[0]:>13.0f} {rates[1]:>18.0f} {rates[1] / rates[0]:>6.2f}")
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    main()
