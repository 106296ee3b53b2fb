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

import requests
import urllib3
from requests.adapters import HTTPAdapter
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


def _never_connected(exc: BaseException) -> bool:
    """Whether a requests error means the connection itself failed (not a reset after connecting)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


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


class _PeerCheckingAdapter(HTTPAdapter):
    def __init__(self, policy: UrlPolicy, pool_size: int):
        self.policy = policy
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _peer_checked(HTTPConnectionPool, self.policy),
            "https": _peer_checked(HTTPSConnectionPool, self.policy),
        }


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
        self._local = threading.local()

    def close(self) -> None:
        """Stop the name-lookup threads; the fetcher may still read the cache and local files afterwards."""
        self.policy.close()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = _PeerCheckingAdapter(self.policy, self.pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "mmscore image fetcher"
            self._local.session = session
        return session

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
            resp = self._session().get(
                url, stream=True, allow_redirects=False, timeout=(s.connect_timeout, s.read_timeout)
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise _Failure(statuses.TIMEOUT, unreachable=True) from exc
        except requests.exceptions.Timeout as exc:
            raise _Failure(statuses.TIMEOUT) from exc
        except requests.exceptions.ConnectionError as exc:
            raise _Failure(statuses.CONNECTION_ERROR, unreachable=_never_connected(exc)) from exc
        except requests.exceptions.RequestException as exc:  # InvalidURL and the rest: not a usable URL
            raise _Failure(statuses.BAD_URL) from exc
        with resp:
            if resp.is_redirect and resp.headers.get("Location"):
                return resp.headers["Location"]
            if resp.status_code != 200:
                raise _Failure(statuses.http(resp.status_code), _retry_after_seconds(resp.headers.get("Retry-After")))
            return self._read_body(resp)

    def _read_body(self, resp: requests.Response) -> bytes:
        s = self.settings
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > s.max_bytes:
            raise _Failure(statuses.TOO_LARGE)
        deadline = time.monotonic() + s.total_timeout
        chunks, size = [], 0
        try:
            # read1 returns whatever one socket read brings, so the deadline is checked while a
            # slow trickle is still arriving (a 64 KiB read() would wait for all 64 KiB).
            while chunk := resp.raw.read1(64 * 1024, decode_content=True):
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
