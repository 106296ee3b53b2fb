"""Per-host health for one run: a host that keeps failing to connect is given up once, not paid per reference."""

from __future__ import annotations

import threading
import time

# Failures that say nothing was reached (mmscore.statuses.UNREACHABLE): no address, or no connection. Answers
# from a server (404, resets after connecting, slow bodies) say the host is alive and never trip the breaker.


class HostBreaker:
    """Counts consecutive connection-level failures per host; at ``threshold`` the host is open (given up).

    After ``cooldown`` seconds one reference is let through as a trial: if it connects, the host is back;
    if not, it stays given up for another ``cooldown``.
    """

    def __init__(self, threshold: int = 3, cooldown: float = 60.0):
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures: dict[str, int] = {}
        self._opened_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def is_open(self, host: str) -> bool:
        with self._lock:
            if self._failures.get(host, 0) < self.threshold:
                return False
            now = time.monotonic()
            if now - self._opened_at.get(host, now) < self.cooldown:
                return True
            self._opened_at[host] = now  # this caller is the trial; the others keep waiting out the cooldown
            return False

    def record(self, host: str, unreachable: bool) -> None:
        """One attempt's outcome: ``unreachable`` when no connection could be made at all."""
        with self._lock:
            if not unreachable:
                self._failures[host] = 0  # alive: only *consecutive* failures count
                self._opened_at.pop(host, None)
                return
            self._failures[host] = self._failures.get(host, 0) + 1
            if self._failures[host] == self.threshold:
                self._opened_at[host] = time.monotonic()

    def open_hosts(self) -> list[str]:
        with self._lock:
            return sorted(h for h, n in self._failures.items() if n >= self.threshold)
