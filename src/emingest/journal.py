"""The resume journal of one volume: which tiles of which level are safely on disk.

An append-only text file beside the store. The first line fingerprints the write plan (shape,
dtype, chunks, levels, codec); a journal whose plan differs is discarded with the store. A tile
is appended only after its write has completed, so after a SIGKILL the journal never claims a
tile that is not whole; a torn last line is ignored.

On object storage (an ``s3://`` data root) there is no append: the journal is one object,
rewritten whole (one atomic PUT) at most every ``checkpoint_s`` seconds and when the volume's
writing ends. A kill loses at most the tiles finished since the last checkpoint; those are
written again on resume (a tile's chunk writes are idempotent), never claimed without being
whole.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from emingest.storage import Location


class TileJournal:
    def __init__(
        self, path: Path | Location, plan: dict[str, Any], *, checkpoint_s: float = 2.0
    ) -> None:
        if isinstance(path, Location) and path.is_local:
            path = path.path
        # a file appended to, or an object rewritten at checkpoints
        self.path: Path | Location = path if isinstance(path, Location) else Path(path)
        self.plan = plan
        self.checkpoint_s = checkpoint_s
        self._done: set[tuple[int, tuple[int, ...]]] = set()
        self._lock = threading.Lock()
        self._fh: Any = None
        self._dirty = False
        self._last_checkpoint = time.monotonic()

    @property
    def _object(self) -> Location | None:
        return self.path if isinstance(self.path, Location) else None

    def _text(self) -> str:
        lines = [json.dumps({"plan": self.plan})]
        lines += [json.dumps({"l": lv, "t": list(t)}) for lv, t in sorted(self._done)]
        return "\n".join(lines) + "\n"

    def _checkpoint(self, obj: Location) -> None:
        """Rewrite the journal object (under ``_lock``)."""
        obj.write_text(self._text())
        self._dirty = False
        self._last_checkpoint = time.monotonic()

    def load(self) -> bool:
        """Read an existing journal; True when it matches the plan (resume), else False."""
        try:
            if isinstance(self.path, Location):
                lines = self.path.read_text().splitlines()
            else:
                lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return False
        if not lines:
            return False
        try:
            if json.loads(lines[0]) != {"plan": self.plan}:
                return False
        except ValueError:
            return False
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                self._done.add((int(entry["l"]), tuple(entry["t"])))
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill
        return True

    def start_fresh(self) -> None:
        self._done.clear()
        if isinstance(self.path, Location):
            with self._lock:
                self._checkpoint(self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"plan": self.plan}) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def is_done(self, level: int, tile: tuple[int, ...]) -> bool:
        return (level, tuple(tile)) in self._done

    def count(self, level: int) -> int:
        return sum(1 for lv, _ in self._done if lv == level)

    def mark_done(self, level: int, tile: tuple[int, ...]) -> None:
        line = json.dumps({"l": level, "t": list(tile)}) + "\n"
        obj = self._object
        if obj is not None:
            with self._lock:
                self._done.add((level, tuple(tile)))
                self._dirty = True
                if time.monotonic() - self._last_checkpoint >= self.checkpoint_s:
                    self._checkpoint(obj)
            return
        assert isinstance(self.path, Path)
        with self._lock:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._done.add((level, tuple(tile)))

    def close(self) -> None:
        """Stop writing; on object storage, save what was done since the last checkpoint."""
        with self._lock:
            obj = self._object
            if obj is not None and self._dirty:
                self._checkpoint(obj)
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def remove(self) -> None:
        with self._lock:
            self._dirty = False  # nothing to save: the volume is complete
        self.close()
        if isinstance(self.path, Location):
            self.path.unlink()
        else:
            self.path.unlink(missing_ok=True)
