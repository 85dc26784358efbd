"""The resume journal of one volume: which tiles of which level are safely on disk.

An append-only text file beside the store. The first line fingerprints the write plan (shape,
dtype, chunks, levels, codec); a journal whose plan differs is discarded with the store. A tile
is appended only after its write has completed, so after a SIGKILL the journal never claims a
tile that is not whole; a torn last line is ignored.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class TileJournal:
    def __init__(self, path: Path, plan: dict[str, Any]) -> None:
        self.path = Path(path)
        self.plan = plan
        self._done: set[tuple[int, tuple[int, ...]]] = set()
        self._lock = threading.Lock()
        self._fh: Any = None

    def load(self) -> bool:
        """Read an existing journal; True when it matches the plan (resume), else False."""
        try:
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
        with self._lock:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._done.add((level, tuple(tile)))

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
