"""Progress reporting: one small interface; the CLI renders it, tests render nothing.

The pipeline calls ``start`` / ``advance`` / ``finish`` from worker threads; implementations are
thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(self, key: str, label: str, total_bytes: int) -> None: ...
    def advance(self, key: str, nbytes: int) -> None: ...
    def finish(self, key: str, status: str) -> None: ...


class NullProgress:
    def start(self, key: str, label: str, total_bytes: int) -> None:
        pass

    def advance(self, key: str, nbytes: int) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        pass


class _Tally:
    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self.last_log = self.t0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta_s = f"{eta:.0f}s" if eta != float("inf") else "?"
        return (
            f"{self.label}: {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB ({pct:.0f}%), "
            f"{rate / 1e6:.1f} MB/s, ETA {eta_s}"
        )


class LogProgress:
    """Plain log lines (no terminal): one per volume every ``every_s`` seconds, and at the end."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._tallies: dict[str, _Tally] = {}
        self._lock = threading.Lock()

    def start(self, key: str, label: str, total_bytes: int) -> None:
        with self._lock:
            self._tallies[key] = _Tally(label, total_bytes)
        log.info("%s: started, %.1f MB to write", label, total_bytes / 1e6)

    def advance(self, key: str, nbytes: int) -> None:
        with self._lock:
            t = self._tallies.get(key)
            if t is None:
                return
            t.done += nbytes
            now = time.monotonic()
            if now - t.last_log < self.every_s:
                return
            t.last_log = now
            line = t.line()
        log.info("%s", line)

    def finish(self, key: str, status: str) -> None:
        with self._lock:
            t = self._tallies.pop(key, None)
        if t is not None:
            log.info("%s -> %s", t.line(), status)


class RichProgress:
    """A live display on a terminal: per volume bytes done, MB/s and ETA."""

    def __init__(self, console: Any = None) -> None:
        """``console``: a ``rich.console.Console`` (default: rich's, on the terminal)."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as _RichProgress,
        )

        self._progress = _RichProgress(
            TextColumn("{task.description}", style="bold", markup=False),  # names are literal
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=False,
            console=console,
        )
        self._tasks: dict[str, tuple[TaskID, str]] = {}  # key -> (rich's task, label)
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, key: str, label: str, total_bytes: int) -> None:
        with self._lock:
            self._tasks[key] = (self._progress.add_task(label, total=total_bytes), label)

    def advance(self, key: str, nbytes: int) -> None:
        entry = self._tasks.get(key)
        if entry is not None:
            self._progress.advance(entry[0], nbytes)

    def finish(self, key: str, status: str) -> None:
        with self._lock:
            entry = self._tasks.pop(key, None)
        if entry is not None:
            task, label = entry
            self._progress.update(task, description=f"{label} [{status}]")
