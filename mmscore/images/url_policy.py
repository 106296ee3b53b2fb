"""Which image URLs mmscore may fetch: http(s) only, and by default no private or local hosts."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from mmscore import statuses

Resolver = Callable[[str, int], list[str]]
FAILURE_TTL = 60.0  # seconds a failed lookup is remembered before the name is tried again
LOOKUP_THREADS = 32


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (IPv4 and IPv6)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class UrlRefused(Exception):
    """A URL mmscore will not fetch; ``status`` is the per-row status to report."""

    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status = status


class LookupPending(Exception):
    """The host's address is still being looked up (asked not to wait): try the reference again shortly."""


@dataclass
class _Lookup:
    """One host's lookup for the run: running in the lookup pool, then its answer (or failure) for good."""

    future: Future
    deadline: float

    def failed(self) -> bool:
        if self.future.done():
            return self.future.exception() is not None or not self.future.result()
        return time.monotonic() > self.deadline

    def addresses(self, host: str, timeout: float, wait: bool) -> list[str]:
        remaining = self.deadline - time.monotonic()
        if not self.future.done() and not wait and remaining > 0:
            raise LookupPending(host)
        try:
            addresses = self.future.result(max(0.0, remaining))
        except FutureTimeout as exc:
            raise UrlRefused(statuses.DNS_TIMEOUT, f"resolving {host} took over {timeout} s") from exc
        except (OSError, ValueError) as exc:  # UnicodeError (bad IDNA labels) is a ValueError
            raise UrlRefused(statuses.DNS_ERROR, f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise UrlRefused(statuses.DNS_ERROR, f"{host} resolves to nothing")
        return list(addresses)


class UrlPolicy:
    """Checks a URL before any connection is made, and the peer of every connection made.

    ``allowed_networks`` lets chosen internal ranges through while the rest stay blocked;
    ``resolver`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allowed_networks: Iterable[str] = (),
        resolver: Resolver = system_resolver,
        resolve_timeout: float = 2.0,  # healthy name servers answer in well under a second
    ):
        self.allow_private = allow_private
        self.resolve_timeout = resolve_timeout
        self.allowed_networks = [ipaddress.ip_network(n) for n in allowed_networks]
        self.resolver = resolver
        # One lookup per (host, port) per run, failures included: a dead name server is paid once, not per row.
        self._lookups: dict[tuple[str, int], _Lookup] = {}
        self._lookups_guard = threading.Lock()
        # getaddrinfo has no timeout of its own; lookups run in this policy's own threads (started on first
        # use, stopped by close()) so a hung resolver costs a wait, not a fetch worker.
        self._lookup_pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Stop the lookup threads (a lookup still hanging in the resolver is abandoned, not waited for)."""
        with self._lookups_guard:
            pool, self._lookup_pool = self._lookup_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def permits_address(self, address: str) -> bool:
        if self.allow_private or is_public_address(address):
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return any(ip in network for network in self.allowed_networks)

    def check_peer(self, address: str) -> None:
        """Refuse a connection whose actual peer is not permitted (the DNS answer changed after ``check``)."""
        if not self.permits_address(address):
            raise UrlRefused(statuses.BLOCKED_PRIVATE, f"connected to non-public address {address}")

    def check(self, url: str, wait: bool = True) -> None:
        """Raise :class:`UrlRefused` unless ``url`` is http(s) to a permitted host.

        With ``wait=False`` a lookup still in flight raises :class:`LookupPending` instead of blocking.
        """
        _scheme, host, port = parse_url(url)
        if self.allow_private:
            return
        addresses = self.resolve(host, port, wait)
        if not all(self.permits_address(a) for a in addresses):
            raise UrlRefused(statuses.BLOCKED_PRIVATE, f"{host} resolves to a non-public address")

    def resolve(self, host: str, port: int, wait: bool = True) -> list[str]:
        """The addresses of ``host``, looked up once per run; every caller shares that one lookup."""
        key = (host, port)
        with self._lookups_guard:
            lookup = self._lookups.get(key)
            # A failure is remembered for a minute, not forever: a blip in name service costs one minute of
            # a host's images, a dead host one lookup per minute.
            if lookup is not None and lookup.failed() and time.monotonic() > lookup.deadline + FAILURE_TTL:
                lookup = None
            if lookup is None:
                if self._lookup_pool is None:
                    self._lookup_pool = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="mmscore-dns")
                future = self._lookup_pool.submit(self.resolver, host, port)
                lookup = self._lookups[key] = _Lookup(future, time.monotonic() + self.resolve_timeout)
        return lookup.addresses(host, self.resolve_timeout, wait)


MAX_URL_LENGTH = 8192
MAX_HOST_LENGTH = 253


def parse_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL, or :class:`UrlRefused` (``blocked_scheme`` / ``bad_url``)."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(statuses.BAD_URL, f"URL longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise UrlRefused(statuses.BAD_URL, "URL contains control characters")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlRefused(statuses.BLOCKED_SCHEME, f"scheme {parts.scheme!r} is not http(s)")
        host, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:  # broken IPv6 brackets, a port that is not a number or out of range
        raise UrlRefused(statuses.BAD_URL, f"malformed URL: {exc}") from exc
    if not host:
        raise UrlRefused(statuses.BAD_URL, "URL has no host")
    if len(host) > MAX_HOST_LENGTH or any(not label for label in host.rstrip(".").split(".")):
        raise UrlRefused(statuses.BAD_URL, "malformed host name")
    return scheme, host, port
