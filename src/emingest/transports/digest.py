"""sha256 of downloads while they stream: in order (:class:`RunningDigest`), out of order
(:class:`PrefixHasher`, for parallel Range segments), or of a file on disk."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from emingest.errors import IntegrityError

HASH_BLOCK = 8 << 20


class RunningDigest:
    """sha256 of a file's prefix, fed while streaming; re-read from disk when out of step."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.upto = 0

    def align(self, path: Path, offset: int) -> None:
        """Make the digest cover exactly ``path[:offset]``."""
        if offset == self.upto:
            return
        self._hash = hashlib.sha256()
        self.upto = 0
        if offset:
            self._hash = file_sha256(path, upto=offset, into=self._hash)
            self.upto = offset

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.upto += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class PrefixHasher:
    """sha256 of a file whose segments land out of order. A thread hashes the finished prefix
    while later segments still download, so on a real network the hash costs no wall time and
    at the end only the last segments are left (hashing after the download took ~0.4 s per
    768 MiB here)."""

    def __init__(self, path: Path, size: int, segment_bytes: int, done: set[int]) -> None:
        self._path, self._size, self._seg = Path(path), size, segment_bytes
        self._hash = hashlib.sha256()
        self._hashed = 0
        self._ready = set(done)
        self._cond = threading.Condition()
        self._stop = False
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="emingest-hash", daemon=True)
        self._thread.start()

    def segment_done(self, index: int) -> None:
        with self._cond:
            self._ready.add(index)
            self._cond.notify()

    def _prefix_end(self) -> int:
        i = self._hashed // self._seg  # _hashed is always a segment boundary
        while i in self._ready:
            i += 1
        return min(i * self._seg, self._size)

    def _run(self) -> None:
        try:
            buf = bytearray(HASH_BLOCK)
            view = memoryview(buf)
            with open(self._path, "rb", buffering=0) as fh:
                while True:
                    with self._cond:
                        while not self._stop and self._prefix_end() <= self._hashed:
                            self._cond.wait()
                        end = self._prefix_end()
                    if end <= self._hashed:
                        return
                    fh.seek(self._hashed)
                    while self._hashed < end:
                        n = fh.readinto(view[: min(HASH_BLOCK, end - self._hashed)])
                        if not n:
                            raise IntegrityError(f"{self._path}: ends at byte {self._hashed}")
                        self._hash.update(view[:n])
                        self._hashed += n
        except Exception as err:  # noqa: BLE001 - re-raised by hexdigest()
            self._error = err

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()

    def hexdigest(self) -> str:
        """Once every segment is done: the sha256 of the whole file."""
        self.close()
        if self._error is not None:
            raise self._error
        if self._hashed != self._size:
            raise IntegrityError(
                f"{self._path}: hashed {self._hashed} of {self._size} bytes; a segment is missing"
            )
        return self._hash.hexdigest()


def file_sha256(path: Path, *, upto: int | None = None, into: Any = None) -> Any:
    """The sha256 object of ``path`` (its first ``upto`` bytes), read in 8 MiB blocks."""
    h = into if into is not None else hashlib.sha256()
    left = upto
    buf = bytearray(HASH_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while left is None or left > 0:
            want = HASH_BLOCK if left is None else min(HASH_BLOCK, left)
            n = fh.readinto(view[:want])
            if not n:
                break
            h.update(view[:n])
            if left is not None:
                left -= n
    return h


__all__ = ["HASH_BLOCK", "PrefixHasher", "RunningDigest", "file_sha256"]
