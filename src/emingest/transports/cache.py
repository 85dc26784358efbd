"""The download cache on disk: partial files, their resume state, and finished files.

A download writes ``.<name>.part`` next to its final name, with its resume state in
``.<name>.part.json`` (URL, size, validators, finished segments). When every byte is there the
size (and the expected sha256, when one is known) is checked and the file is renamed into
place atomically; a ``.<name>.done.json`` beside it remembers its URL, size and sha256 so the
cache can serve it again without a download. A killed run leaves the partial file, and the
next run resumes it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emingest.errors import IntegrityError


@dataclass(frozen=True)
class DownloadedFile:
    """A file in the cache, with what the record needs (:meth:`as_file_digest`)."""

    path: Path
    name: str
    url: str
    size_bytes: int
    sha256: str
    fetched_bytes: int = 0
    """Bytes moved over the network by this call (0 when served from the cache)."""
    resumed_from: int = 0
    """Bytes already on disk (a partial file) when this call started."""
    from_cache: bool = False

    def as_file_digest(self) -> dict[str, Any]:
        """``{name, url, size_bytes, sha256}``: the shape of ``records.FileDigest``."""
        return {
            "name": self.name,
            "url": self.url,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }


class PartialFile:
    """The temp file and resume state of one download, in the destination folder."""

    def __init__(self, final: Path) -> None:
        self.final = Path(final)
        self.part = self.final.with_name(f".{self.final.name}.part")
        self.state_path = self.final.with_name(f".{self.final.name}.part.json")
        self.done_path = done_marker(self.final)

    def size(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def load_state(self, url: str) -> dict[str, Any] | None:
        """The saved state of a download of ``url``; a partial of another URL is discarded."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict) or state.get("url") != url:
            self.discard()
            return None
        return state

    def save_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.state_path)

    def discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)

    def open_at(self, offset: int) -> Any:
        """The partial file open for writing at ``offset`` (everything after it dropped)."""
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.part, "r+b" if offset > 0 and self.part.exists() else "wb")  # noqa: SIM115
        fh.truncate(offset)
        fh.seek(offset)
        return fh

    def finalize(
        self,
        *,
        url: str,
        sha256: str,
        expected_size: int | None,
        expected_sha256: str | None,
    ) -> int:
        """Check size and digest, then rename into place. Returns the size."""
        size = self.size()
        if expected_size is not None and size != expected_size:
            self.discard()
            raise IntegrityError(
                f"{url}: downloaded {size} bytes where {expected_size} were announced; the "
                "partial file was removed, run again to download it afresh"
            )
        if expected_sha256 is not None and sha256.lower() != expected_sha256.lower():
            self.discard()
            raise IntegrityError(
                f"{url}: sha256 {sha256} differs from the expected {expected_sha256}; the file "
                "was removed"
            )
        with open(self.part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.part, self.final)
        self.state_path.unlink(missing_ok=True)
        tmp = self.done_path.with_name(self.done_path.name + ".tmp")
        tmp.write_text(
            json.dumps({"url": url, "size_bytes": size, "sha256": sha256}), encoding="utf-8"
        )
        os.replace(tmp, self.done_path)
        return size


def done_marker(final: Path) -> Path:
    return Path(final).with_name(f".{Path(final).name}.done.json")


def cached_file(final: Path, url: str) -> DownloadedFile | None:
    """The finished download of ``url`` at ``final``, when its marker and size agree."""
    try:
        meta = json.loads(done_marker(final).read_text(encoding="utf-8"))
        size = Path(final).stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("url") != url or meta.get("size_bytes") != size:
        return None
    sha = meta.get("sha256")
    if not isinstance(sha, str):
        return None
    return DownloadedFile(
        path=Path(final),
        name=Path(final).name,
        url=url,
        size_bytes=size,
        sha256=sha,
        from_cache=True,
    )


__all__ = ["DownloadedFile", "PartialFile", "cached_file", "done_marker"]
