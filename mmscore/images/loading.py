"""Fetch and decode a chunk's images: every distinct reference once, on a pool of workers shared fairly
between hosts (a busy host's reference waits at the back of the line instead of holding a worker)."""

from __future__ import annotations

import time
from collections import Counter, deque
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mmscore.images.decode import decode_image
from mmscore.images.fetcher import DEFERRED, ImageFetcher


def load_image(
    fetcher: ImageFetcher, ref: object, size: int, wait: bool = True, alone: bool = False
) -> tuple[np.ndarray | None, str]:
    """Fetch and decode one ``image_*`` cell: pixels (or None) and the status to report (``wait=False``: may
    be :data:`DEFERRED`; ``alone``: no other host's references wait, see :meth:`ImageFetcher.fetch`)."""
    fetched = fetcher.fetch(ref, wait, alone)
    if fetched.data is None:
        return None, fetched.status
    decoded = decode_image(fetched.data, size)
    return decoded.pixels, (fetched.status if decoded.pixels is not None else decoded.status)


def load_images(refs: list, fetcher: ImageFetcher, pool: ThreadPoolExecutor, size: int) -> dict:
    """``ref -> (pixels, status)`` for each distinct reference in ``refs``, fetched and decoded once by ``pool``.

    A reference whose host is busy (its name lookup in flight, or all its connections in use) goes to the
    back of the line instead of holding a worker, so a dead or slow host never stalls the others. The
    per-host cap holds only while other hosts' references wait: a host alone in the line may use every worker.
    """
    results: dict = {}
    waiting = deque(dict.fromkeys(refs))
    servers = {ref: fetcher.server_of(ref) for ref in waiting}
    waiting_per_server = Counter(s for s in servers.values() if s is not None)
    running: dict = {}
    while waiting or running:
        while waiting and len(running) < fetcher.pool_size:
            ref = waiting.popleft()
            server = servers[ref]
            if server is not None:
                waiting_per_server[server] -= 1
            alone = server is not None and waiting_per_server.total() == waiting_per_server[server]
            running[pool.submit(load_image, fetcher, ref, size, False, alone)] = ref
        done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
        progressed = False
        for future in done:
            ref = running.pop(future)
            pixels, status = future.result()
            if status == DEFERRED:
                waiting.append(ref)
                waiting_per_server[servers[ref]] += 1
            else:
                results[ref] = (pixels, status)
                progressed = True
        if not progressed:
            time.sleep(0.01)  # only deferred references came back: give the busy hosts a moment
    return results
