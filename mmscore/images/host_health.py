"""Per-host health for one run: a host that keeps failing to connect is given up once, not paid per reference."""

from __future__ import annotations

import threading

# Failures that say nothing was reached: no address, or no connection. Answers from a server (404, resets
# after connecting, slow bodies) say the host is alive and never trip the breaker.
UNREACHABLE = frozenset({"dns_error", "dns_timeout"})


class HostBreaker:
    """Counts consecutive connection-level failures per host; at ``threshold`` the host is open (given up)."""

    def __init__(self, threshold: int = 3):
        self.threshold = threshold
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def is_open(self, host: str) -> bool:
        with self._lock:
            return self._failures.get(host, 0) >= self.threshold

    def record(self, host: str, unreachable: bool) -> None:
        """One attempt's outcome: ``unreachable`` when no connection could be made at all."""
        with self._lock:
            if unreachable:
                self._failures[host] = self._failures.get(host, 0) + 1
            elif self._failures.get(host, 0) < self.threshold:
                self._failures[host] = 0  # alive: only *consecutive* failures count

    def open_hosts(self) -> list[str]:
        with self._lock:
            return sorted(h for h, n in self._failures.items() if n >= self.threshold)
