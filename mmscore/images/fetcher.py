"""Fetch image bytes for a row's ``image_*`` value: an http(s) URL, a local path, or nothing.

Every outcome is a :class:`Fetched` with a status string; nothing here raises for bad input.
"""

from __future__ import annotations

import contextlib
import email.utils
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from mmscore.images.image_cache import ImageCache
from mmscore.images.url_policy import UrlPolicy, UrlRefused

RETRY_STATUSES = {429, 500, 502, 503, 504}


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
    def __init__(self, status: str, retry_after: float | None = None):
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


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
        base_dir: Path | None = None,
        pool_size: int = 16,
    ):
        self.cache = cache
        self.policy = policy or UrlPolicy()
        self.settings = settings or FetchSettings()
        self.base_dir = base_dir or Path.cwd()
        self.pool_size = pool_size
        self._local = threading.local()

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

    def fetch(self, ref: object) -> Fetched:
        """Bytes and status for one ``image_*`` cell."""
        ref = image_reference(ref)
        if ref is None:
            return Fetched(None, "missing")
        if "://" not in ref:
            return self._read_local(ref)
        cached = self.cache.get(ref)
        if cached is not None:
            return Fetched(cached, "cached")
        if self.settings.offline:
            return Fetched(None, "offline_miss")
        try:
            data = self._download(ref)
        except UrlRefused as refused:
            return Fetched(None, refused.status)
        except _Failure as failure:
            return Fetched(None, failure.status)
        with contextlib.suppress(OSError):  # a full or read-only cache costs a refetch later, never this row
            self.cache.put(ref, data)
        return Fetched(data, "ok")

    def _read_local(self, ref: str) -> Fetched:
        path = Path(ref).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            if path.stat().st_size > self.settings.max_bytes:
                return Fetched(None, "too_large")
            return Fetched(path.read_bytes(), "ok")
        except FileNotFoundError:
            return Fetched(None, "not_found")
        except (IsADirectoryError, PermissionError, OSError):
            return Fetched(None, "read_error")

    def _download(self, url: str) -> bytes:
        """GET with retries on 429/5xx and transient network errors (exponential backoff, Retry-After)."""
        attempt = 0
        while True:
            try:
                return self._follow_redirects(url)
            except _Failure as failure:
                transient = failure.status in {f"http_{c}" for c in RETRY_STATUSES} | {"connection_error", "truncated"}
                if not transient or attempt >= self.settings.retries:
                    raise
                wait = failure.retry_after
                if wait is None:
                    wait = self.settings.backoff * 2**attempt
                time.sleep(min(wait, self.settings.max_retry_wait))
                attempt += 1

    def _follow_redirects(self, url: str) -> bytes:
        for _hop in range(self.settings.max_redirects + 1):
            self.policy.check(url)  # every hop, so a redirect cannot lead to a private host
            location = self._get_once(url)
            if isinstance(location, bytes):
                return location
            url = urljoin(url, location)
        raise _Failure("too_many_redirects")

    def _get_once(self, url: str) -> bytes | str:
        """One request: the body (bytes) or a redirect target (str)."""
        s = self.settings
        try:
            resp = self._session().get(
                url, stream=True, allow_redirects=False, timeout=(s.connect_timeout, s.read_timeout)
            )
        except requests.exceptions.Timeout as exc:
            raise _Failure("timeout") from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.InvalidURL) as exc:
            raise _Failure("connection_error") from exc
        except requests.exceptions.RequestException as exc:
            raise _Failure("bad_url") from exc
        with resp:
            if resp.is_redirect and resp.headers.get("Location"):
                return resp.headers["Location"]
            if resp.status_code != 200:
                raise _Failure(f"http_{resp.status_code}", _retry_after_seconds(resp.headers.get("Retry-After")))
            return self._read_body(resp)

    def _read_body(self, resp: requests.Response) -> bytes:
        s = self.settings
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > s.max_bytes:
            raise _Failure("too_large")
        deadline = time.monotonic() + s.total_timeout
        chunks, size = [], 0
        try:
            # read1 returns whatever one socket read brings, so the deadline is checked while a
            # slow trickle is still arriving (a 64 KiB read() would wait for all 64 KiB).
            while chunk := resp.raw.read1(64 * 1024, decode_content=True):
                size += len(chunk)
                if size > s.max_bytes:
                    raise _Failure("too_large")  # stop reading: never pull an oversized body in full
                if time.monotonic() > deadline:
                    raise _Failure("timeout")
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise _Failure("timeout") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Failure("truncated") from exc
        data = b"".join(chunks)
        if declared.isdigit() and len(data) < int(declared):
            raise _Failure("truncated")
        return data
