"""Which image URLs mmscore may fetch: http(s) only, and by default no private or local hosts."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]
# getaddrinfo has no timeout of its own; lookups run here so a hung resolver costs a wait, not a worker.
_LOOKUPS = ThreadPoolExecutor(8, thread_name_prefix="mmscore-dns")


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
        resolve_timeout: float = 5.0,
    ):
        self.allow_private = allow_private
        self.resolve_timeout = resolve_timeout
        self.allowed_networks = [ipaddress.ip_network(n) for n in allowed_networks]
        self.resolver = resolver

    def permits_address(self, address: str) -> bool:
        if self.allow_private or is_public_address(address):
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return any(ip in network for network in self.allowed_networks)

    def check_peer(self, address: str) -> None:
        """Refuse a connection whose actual peer is not permitted (the DNS answer changed after ``check``)."""
        if not self.permits_address(address):
            raise UrlRefused("blocked_private", f"connected to non-public address {address}")

    def check(self, url: str) -> None:
        """Raise :class:`UrlRefused` unless ``url`` is http(s) to a permitted host."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise UrlRefused("blocked_scheme", f"scheme {parts.scheme!r} is not http(s)")
        if not parts.hostname:
            raise UrlRefused("bad_url", "URL has no host")
        if self.allow_private:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            addresses = _LOOKUPS.submit(self.resolver, parts.hostname, port).result(self.resolve_timeout)
        except FutureTimeout as exc:
            raise UrlRefused("dns_timeout", f"resolving {parts.hostname} took over {self.resolve_timeout} s") from exc
        except (OSError, ValueError) as exc:
            raise UrlRefused("dns_error", f"cannot resolve {parts.hostname}: {exc}") from exc
        if not addresses:
            raise UrlRefused("dns_error", f"{parts.hostname} resolves to nothing")
        if not all(self.permits_address(a) for a in addresses):
            raise UrlRefused("blocked_private", f"{parts.hostname} resolves to a non-public address")
