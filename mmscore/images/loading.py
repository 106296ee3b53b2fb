"""Fetch and decode a chunk's images: every distinct reference once. Fetch workers only wait on the network and
are shared fairly between hosts (a busy host's reference waits at the back of the line instead of holding a
worker); the bytes they bring are decoded by a small pool sized to the cores, so a decode never holds a network
slot and a network wait never holds a core."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from mmscore.images.decode import decode_image
from mmscore.images.fetcher import DEFERRED, Fetched, ImageFetcher

Loaded = tuple[np.ndarray | None, str]  # pixels (or None) and the status to report


def load_image(fetcher: ImageFetcher, ref: object, size: int, wait: bool = True, alone: bool = False) -> Loaded:
    """Fetch and decode one ``image_*`` cell: pixels (or None) and the status to report (``wait=False``: may
    be :data:`DEFERRED`; ``alone``: no other host's references wait, see :meth:`ImageFetcher.fetch`)."""
    return _decoded(fetcher.fetch(ref, wait, alone), size)


def _decoded(fetched: Fetched, size: int) -> Loaded:
    if fetched.data is None:
        return None, fetched.status
    decoded = decode_image(fetched.data, size)
    return decoded.pixels, (fetched.status if decoded.pixels is not None else decoded.status)


_decoders: ThreadPoolExecutor | None = None
_decoders_made = threading.Lock()


def decoders() -> ThreadPoolExecutor:
    """The process's decode pool: one thread per core this process may use (Pillow decodes and resizes
    without the interpreter lock, so these run in parallel)."""
    global _decoders
    with _decoders_made:
        if _decoders is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            _decoders = ThreadPoolExecutor(max(1, cores), thread_name_prefix="mmscore-decode")
        return _decoders


class _Line:
    """The references still to fetch, shared by the fetch workers: each takes the next one itself (no round trip
    through a coordinator per image), and a reference whose host is busy goes back to the end."""

    def __init__(self, refs: list, fetcher: ImageFetcher):
        self.lock = threading.Lock()
        self.waiting = deque(dict.fromkeys(refs))
        self.servers = {ref: fetcher.server_of(ref) for ref in self.waiting}
        self.per_server = Counter(s for s in self.servers.values() if s is not None)

    def take(self) -> tuple[object, bool] | None:
        """The next reference and whether its host is alone in the line (then it may use every worker)."""
        with self.lock:
            if not self.waiting:
                return None
            ref = self.waiting.popleft()
            server = self.servers[ref]
            if server is None:
                return ref, False
            self.per_server[server] -= 1
            return ref, self.per_server.total() == self.per_server[server]

    def put_back(self, ref: object) -> None:
        with self.lock:
            self.waiting.append(ref)
            if self.servers[ref] is not None:
                self.per_server[self.servers[ref]] += 1


def load_images(refs: list, fetcher: ImageFetcher, pool: ThreadPoolExecutor, size: int) -> dict[object, Loaded]:
    """``ref -> (pixels, status)`` for each distinct reference in ``refs``, fetched by ``pool`` and decoded by
    :func:`decoders`, each once.

    A reference whose host is busy (its name lookup in flight, or all its connections in use) goes to the
    back of the line instead of holding a worker, so a dead or slow host never stalls the others. The
    per-host cap holds only while other hosts' references wait: a host alone in the line may use every worker.
    At most ``2 × pool_size`` fetched images wait for a decoder; while that many do, no new fetch starts, so
    memory stays bounded by the worker count whatever the chunk holds.
    """
    line, results, decode_pool = _Line(refs, fetcher), {}, decoders()
    undecoded = threading.BoundedSemaphore(2 * fetcher.pool_size)
    decoding: list[Future] = []

    def decode(ref: object, fetched: Fetched) -> None:
        try:
            results[ref] = _decoded(fetched, size)
        finally:
            undecoded.release()

    def fetch_loop() -> None:
        deferred_in_a_row = 0
        while (item := line.take()) is not None:
            ref, alone = item
            undecoded.acquire()
            fetched = fetcher.fetch(ref, False, alone)
            if fetched.status == DEFERRED:
                undecoded.release()
                line.put_back(ref)
                deferred_in_a_row += 1
                if deferred_in_a_row >= len(line.waiting):
                    time.sleep(0.01)  # every reference left is a busy host's: give the hosts a moment
                continue
            deferred_in_a_row = 0
            if fetched.data is None:
                results[ref] = (None, fetched.status)
                undecoded.release()
            else:
                decoding.append(decode_pool.submit(decode, ref, fetched))

    workers = [pool.submit(fetch_loop) for _ in range(min(fetcher.pool_size, len(line.waiting)))]
    for future in workers:
        future.result()
    for future in decoding:  # complete now: no fetch loop is left to add to it
        future.result()
    return results
