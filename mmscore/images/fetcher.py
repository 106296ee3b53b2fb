"""Fetch image bytes for a row's ``image_*`` value: an http(s) URL, a local path, or nothing.

Every outcome is a :class:`Fetched` with a status string; nothing here raises for bad input.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from mmscore import defaults, statuses
from mmscore.images.host_health import HostBreaker
from mmscore.images.image_cache import ImageCache
from mmscore.images.url_policy import LookupPending, UrlPolicy, UrlRefused, parse_url
from mmscore.statuses import UNREACHABLE

log = logging.getLogger(__name__)

# Returned only by ``fetch(ref, wait=False)``: the host is busy (its lookup is in flight, or it has all the
# connections it may have); the caller should try this reference again later instead of blocking a worker.
DEFERRED = "deferred"


@dataclass(frozen=True)
class Fetched:
    data: bytes | None
    status: str  # ok, cached, missing, not_found, http_404, timeout, too_large, blocked_private, ...


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0  # a slow trickle must not hold a worker forever
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 3
    backoff: float = 0.5
    max_retry_wait: float = 10.0
    max_redirects: int = 3
    offline: bool = False

    def __post_init__(self):
        for name in ("connect_timeout", "read_timeout", "total_timeout", "max_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


class _Failure(Exception):
    def __init__(self, status: str, retry_after: float | None = None, unreachable: bool = False):
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after
        self.unreachable = unreachable  # no connection was made at all (refused, connect timeout, no address)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _peer_checked(pool_cls: type[HTTPConnectionPool], policy: UrlPolicy) -> type[HTTPConnectionPool]:
    """A pool class whose connections check the address they actually reached before sending anything.

    The policy resolves a host before the request; the connection resolves it again. Checking the peer
    closes the gap between the two (DNS rebinding).
    """

    class Connection(pool_cls.ConnectionCls):
        def _new_conn(self):
            sock = super()._new_conn()
            try:
                policy.check_peer(sock.getpeername()[0])
            except UrlRefused:
                sock.close()
                raise
            return sock

    return type(f"PeerChecked{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": Connection})


# What every request sends. Accept-Encoding as browsers and most clients send it; the body is decoded while it
# is read, and the size cap counts decoded bytes.
_HEADERS = {"User-Agent": "mmscore image fetcher", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def connection_pools(policy: UrlPolicy, pool_size: int) -> urllib3.PoolManager:
    """urllib3's pools, used directly (no per-request proxy, cookie and environment work: that was a third of the
    CPU an image cost), shared by every worker, with connections that check their peer (:func:`_peer_checked`).
    Keeps the connections of up to ``max(16, pool_size)`` hosts, ``pool_size`` per host."""
    pools = urllib3.PoolManager(
        num_pools=max(16, pool_size), maxsize=pool_size, headers=_HEADERS, ca_certs=certifi.where()
    )
    pools.pool_classes_by_scheme = {
        "http": _peer_checked(HTTPConnectionPool, policy),
        "https": _peer_checked(HTTPSConnectionPool, policy),
    }
    return pools


def _redirect_target(location: str) -> str:
    """A Location header as the server meant it: servers send UTF-8, the HTTP parser hands it over as latin-1."""
    try:
        return location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return location


def image_reference(cell: object) -> str | None:
    """An ``image_*`` cell as a stripped reference, or None when it is empty (None, NaN, blank)."""
    if cell is None or (isinstance(cell, float) and cell != cell):
        return None
    return str(cell).strip() or None


class ImageFetcher:
    """Resolves image references to bytes, through the cache, with timeouts, retries and size caps.

    >>> fetcher = ImageFetcher(ImageCache(), policy=UrlPolicy())
    >>> fetcher.fetch("https://example.org/cat.jpg").status     # "ok", later "cached"
    """

    def __init__(
        self,
        cache: ImageCache,
        policy: UrlPolicy | None = None,
        settings: FetchSettings | None = None,
        image_root: Path | None = None,
        pool_size: int = 16,
    ):
        self.cache = cache
        self.policy = policy or UrlPolicy()
        self.settings = settings or FetchSettings()
        # Local references are read only inside this folder (symlinks resolved), never elsewhere.
        self.image_root = Path(image_root or Path.cwd()).resolve()
        self.pool_size = pool_size
        self.breaker = HostBreaker()
        # Under contention, at most this many concurrent requests per host: one slow host cannot take every
        # worker. A caller that knows no other host's references are waiting lets a host use them all.
        self.per_host = max(1, pool_size * 3 // 4)
        self._busy: dict[str, int] = {}
        self._busy_changed = threading.Condition()
        self.pools = connection_pools(self.policy, pool_size)

    def close(self) -> None:
        """Stop the name-lookup threads; the fetcher may still read the cache and local files afterwards."""
        self.policy.close()

    def fetch(self, ref: object, wait: bool = True, alone: bool = False) -> Fetched:
        """Bytes and status for one ``image_*`` cell. Never raises: any value ends as a status.

        With ``wait=False`` a reference whose host is busy returns status :data:`DEFERRED` at once. ``alone``:
        no other host's references are waiting, so this host may use every worker (the per-host cap is for
        sharing workers between hosts, and there is nobody to share with).
        """
        try:
            return self._fetch(ref, wait, self.pool_size if alone else self.per_host)
        except Exception as exc:  # one hostile cell must never end the run; the status names the kind
            # the cell itself is not formatted here: its own str() may be what failed
            log.debug("image reference (%s) failed with %s: %s", type(ref).__name__, type(exc).__name__, exc)
            return Fetched(None, statuses.BAD_URL if isinstance(exc, ValueError) else statuses.FETCH_ERROR)

    def server_of(self, ref: object) -> str | None:
        """The ``host:port`` an http(s) reference is fetched from (None for local paths, empty or bad cells)."""
        try:
            ref = image_reference(ref)
            if ref is None or "://" not in ref:
                return None
            _scheme, host, port = parse_url(ref)
        except (UrlRefused, ValueError, TypeError):
            return None
        return f"{host}:{port}"

    def _fetch(self, ref: object, wait: bool, cap: int) -> Fetched:
        ref = image_reference(ref)
        if ref is None:
            return Fetched(None, statuses.MISSING)
        if "://" not in ref:
            return self._read_local(ref)
        try:
            _scheme, host, port = parse_url(ref)
        except UrlRefused as refused:
            return Fetched(None, refused.status)
        cached = self.cache.get(ref)
        if cached is not None:
            return Fetched(cached, statuses.CACHED)
        if self.settings.offline:
            return Fetched(None, statuses.OFFLINE_MISS)
        server = f"{host}:{port}"
        if self.breaker.is_open(server):
            return Fetched(None, statuses.HOST_UNREACHABLE)
        if not self._take_slot(server, wait, cap):
            return Fetched(None, DEFERRED)
        try:
            data = self._download(ref, server, wait)
        except LookupPending:
            return Fetched(None, DEFERRED)
        except UrlRefused as refused:
            return Fetched(None, refused.status)
        except _Failure as failure:
            return Fetched(None, failure.status)
        finally:
            self._free_slot(server)
        with contextlib.suppress(OSError):  # a full or read-only cache costs a refetch later, never this row
            self.cache.put(ref, data)
        return Fetched(data, statuses.OK)

    def _read_local(self, ref: str) -> Fetched:
        """A file inside the image root: resolved (symlinks too), a regular file, at most the size cap."""
        try:
            path = (self.image_root / ref).resolve(strict=True)  # an absolute ref replaces the root, then is checked
        except FileNotFoundError:
            return Fetched(None, statuses.NOT_FOUND)
        except (OSError, RuntimeError, ValueError):  # symlink loops, NUL bytes, names too long
            return Fetched(None, statuses.BAD_PATH)
        if not path.is_relative_to(self.image_root):
            return Fetched(None, statuses.BLOCKED_PATH)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return Fetched(None, statuses.NOT_A_FILE)  # devices, FIFOs, sockets, folders: never opened
            # O_NONBLOCK: should the path be swapped for a FIFO after the check, opening it cannot hang.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return Fetched(None, statuses.NOT_FOUND)
        except OSError:
            return Fetched(None, statuses.READ_ERROR)
        with os.fdopen(fd, "rb", buffering=0) as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return Fetched(None, statuses.NOT_A_FILE)
            try:
                data = _read_at_most(fh, self.settings.max_bytes + 1)
            except OSError:
                return Fetched(None, statuses.READ_ERROR)
        if len(data) > self.settings.max_bytes:
            return Fetched(None, statuses.TOO_LARGE)
        return Fetched(data, statuses.OK)

    def _take_slot(self, server: str, wait: bool, cap: int) -> bool:
        with self._busy_changed:
            while self._busy.get(server, 0) >= cap:
                if not wait:
                    return False
                self._busy_changed.wait()
            self._busy[server] = self._busy.get(server, 0) + 1
            return True

    def _free_slot(self, server: str) -> None:
        with self._busy_changed:
            self._busy[server] -= 1
            if not self._busy[server]:
                del self._busy[server]
            self._busy_changed.notify()

    def _download(self, url: str, server: str, wait: bool = True) -> bytes:
        """GET with retries on 429/5xx and transient network errors (exponential backoff, Retry-After).

        Every attempt tells the host breaker whether a connection could be made at all, and no retry
        starts once the breaker has given the host up.
        """
        attempt = 0
        while True:
            try:
                data = self._follow_redirects(url, wait)
                self.breaker.record(server, unreachable=False)
                return data
            except UrlRefused as refused:
                self.breaker.record(server, unreachable=refused.status in UNREACHABLE)
                raise
            except _Failure as failure:
                self.breaker.record(server, unreachable=failure.unreachable)
                if self.breaker.is_open(server):
                    raise  # no more retries: the host is given up (later references get host_unreachable)
                transient = failure.status in statuses.RETRYABLE
                if not transient or attempt >= self.settings.retries:
                    raise
                wait = failure.retry_after
                if wait is None:
                    wait = self.settings.backoff * 2**attempt
                time.sleep(min(wait, self.settings.max_retry_wait))
                attempt += 1

    def _follow_redirects(self, url: str, wait: bool = True) -> bytes:
        for hop in range(self.settings.max_redirects + 1):
            # Every hop, so a redirect cannot lead to a private host. Only the first may be deferred:
            # after a response, the request is under way and is finished here.
            self.policy.check(url, wait=wait or hop > 0)
            location = self._get_once(url)
            if isinstance(location, bytes):
                return location
            url = urljoin(url, location)
        raise _Failure(statuses.TOO_MANY_REDIRECTS)

    def _get_once(self, url: str) -> bytes | str:
        """One request: the body (bytes) or a redirect target (str)."""
        s = self.settings
        try:
            resp = self.pools.urlopen(
                "GET",
                url,
                redirect=False,
                retries=False,  # retries are ours (_download), so the breaker sees every attempt
                preload_content=False,
                timeout=urllib3.Timeout(connect=s.connect_timeout, read=s.read_timeout),
            )
        except urllib3.exceptions.NewConnectionError as exc:  # refused, no route, name gone: never connected
            raise _Failure(statuses.CONNECTION_ERROR, unreachable=True) from exc
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise _Failure(statuses.TIMEOUT, unreachable=True) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise _Failure(statuses.TIMEOUT) from exc
        except urllib3.exceptions.LocationValueError as exc:  # not a usable URL
            raise _Failure(statuses.BAD_URL) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # reset, protocol and TLS errors after connecting
            raise _Failure(statuses.CONNECTION_ERROR) from exc
        try:
            location = resp.headers.get("Location")
            if resp.status in _REDIRECTS and location:
                return _redirect_target(location)
            if resp.status != 200:
                raise _Failure(statuses.http(resp.status), _retry_after_seconds(resp.headers.get("Retry-After")))
            return self._read_body(resp)
        finally:
            # A body read to its end has already given its connection back for reuse; anything else (an error
            # status, a body cut at the cap) closes it, so no unread bytes are ever pulled.
            resp.close()
            resp.release_conn()

    def _read_body(self, resp: urllib3.BaseHTTPResponse) -> bytes:
        s = self.settings
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > s.max_bytes:
            raise _Failure(statuses.TOO_LARGE)
        deadline = time.monotonic() + s.total_timeout
        chunks, size = [], 0
        try:
            # read1 returns whatever one socket read brings, so the deadline is checked while a
            # slow trickle is still arriving (a 64 KiB read() would wait for all 64 KiB).
            while chunk := resp.read1(64 * 1024, decode_content=True):
                size += len(chunk)
                if size > s.max_bytes:
                    raise _Failure(statuses.TOO_LARGE)  # stop reading: never pull an oversized body in full
                if time.monotonic() > deadline:
                    raise _Failure(statuses.TIMEOUT)
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise _Failure(statuses.TIMEOUT) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Failure(statuses.TRUNCATED) from exc
        data = b"".join(chunks)
        if declared.isdigit() and len(data) < int(declared):
            raise _Failure(statuses.TRUNCATED)
        return data


def _read_at_most(fh, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit and (chunk := fh.read(min(1 << 20, limit - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def build_fetcher(
    image_cache: Path | None = None,
    *,
    offline: bool = False,
    allow_private_urls: bool = False,
    image_root: Path | None = None,
    workers: int = defaults.FETCH_WORKERS,
) -> ImageFetcher:
    """The image fetcher the CLI uses: cache, URL policy, local files read only under ``image_root``."""
    return ImageFetcher(
        ImageCache(image_cache),
        UrlPolicy(allow_private=allow_private_urls),
        FetchSettings(offline=offline),
        image_root=image_root,
        pool_size=workers,
    )


@dataclass(frozen=True)
class ImageSource:
    """Where a run's images come from and what it may fetch: :func:`build_fetcher`'s settings as one typed,
    picklable value (an engine that scores elsewhere builds its fetcher there from it)."""

    image_cache: Path | None = None
    image_root: Path | None = None
    offline: bool = False
    allow_private_urls: bool = False

    def fetcher(self, workers: int = defaults.FETCH_WORKERS) -> ImageFetcher:
        return build_fetcher(
            self.image_cache,
            offline=self.offline,
            allow_private_urls=self.allow_private_urls,
            image_root=self.image_root,
            workers=workers,
        )
