"""One writer per volume and per cached download, across processes: ``fcntl.flock`` lock files.

Two runs of the same volume into one data root used to both do all the work, and two
downloads of one file raced on the ``.part`` rename (``FileNotFoundError``). Now a writer holds
an exclusive ``flock`` on a lock file for as long as it writes; a second process (or thread)
asking for the same lock logs ``being ingested by PID ...`` and waits, then finds the work done
(the record complete, the file in the cache) and skips it. The kernel releases a ``flock`` when
its process dies, however it dies, so a lock left by a killed run never blocks a re-run; lock
files are left in place (removing them would race with a waiting process) and hold only the
PID of their last holder, for messages.

Where locks live is defined here and nowhere else:

* a volume: ``<data_root>/.locks/<source>/<source_id>/<name>.lock`` (beside nothing the
  catalog reads: hidden folders are skipped);
* a cached download: ``.<name>.lock`` beside the file, like its ``.part`` and ``.done.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCKS_DIR = ".locks"


def volume_lock_path(data_root: Path | str, record_path: Path | str) -> Path:
    """The lock of the volume whose record is ``record_path`` (under ``data_root``)."""
    root = Path(data_root)
    try:
        rel = Path(record_path).relative_to(root)
    except ValueError:  # a record outside the data root: lock beside it
        return Path(record_path).with_name(f".{Path(record_path).stem}.lock")
    return root / LOCKS_DIR / rel.with_suffix(".lock")


def download_lock_path(final: Path | str) -> Path:
    """The lock of the cached download that lands at ``final``."""
    final = Path(final)
    return final.with_name(f".{final.name}.lock")


def holder_pid(path: Path | str) -> int | None:
    """The PID written by the lock's last holder (it may have ended), or None."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def held(path: Path | str, *, what: str, wait: bool = True) -> Iterator[bool]:
    """Hold the exclusive lock at ``path`` for the ``with`` block; yields True.

    When another process (or another open of the same file) holds it: with ``wait``, log
    ``<what>: being ingested by PID n; waiting`` and block until it is released; without,
    yield False at once (the caller skips the work)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:  # a read-only or full disk: the write itself will say so
        log.warning("%s: cannot create the lock file %s (%s); going on unlocked", what, path, err)
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = holder_pid(path)
            by = f"PID {pid}" if pid is not None else "another process"
            if not wait:
                log.warning("%s: being ingested by %s (lock %s); skipped", what, by, path)
                yield False
                return
            log.warning("%s: being ingested by %s (lock %s); waiting for it", what, by, path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            log.info("%s: the other writer is done; going on", what)
        with contextlib.suppress(OSError):  # the PID is only for messages; a full disk
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


__all__ = ["LOCKS_DIR", "download_lock_path", "held", "holder_pid", "volume_lock_path"]
