"""Per-host connection limits, shared by every transport given the same limiter."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class HostLimiter:
    """At most ``limit`` concurrent connections per host, shared by every transport given it."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            sem = self._slots.setdefault(host.lower(), threading.BoundedSemaphore(self.limit))
        with sem:
            yield


__all__ = ["HostLimiter"]
