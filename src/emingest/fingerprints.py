"""What a volume's source looked like when it was ingested, so a changed input is not skipped.

A fingerprint is a small JSON object a source fills in ``VolumeInfo.fingerprint`` from what
``describe`` learns anyway: size and modification time of local files, ETag / Last-Modified /
size of remote ones, the list of members. The complete record keeps it
(``source_fingerprint``); a later run compares the source's new fingerprint with it and
ingests again when they differ, saying what changed. A record without one (written before
fingerprints existed) or a source that gives none cannot be checked and is skipped, as before.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emingest.errors import EmingestError

log = logging.getLogger(__name__)

MAX_LISTED = 1000
"""Members listed one by one in a fingerprint; a longer list is kept as its digest."""
ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup"})


def file_entry(path: Path, name: str | None = None) -> dict[str, Any]:
    """``{name, size, mtime_ns}`` of one local file."""
    st = os.stat(path)
    return {"name": name or Path(path).name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def local_files_fingerprint(paths: Iterable[Path], *, root: Path | None = None) -> dict[str, Any]:
    """Every file's size and modification time, in the given order (a slice folder's order
    is its z order: a renamed or inserted slice is a change)."""
    files = []
    for p in paths:
        name = Path(p).relative_to(root).as_posix() if root is not None else Path(p).name
        files.append(file_entry(Path(p), name))
    if len(files) <= MAX_LISTED:
        return {"kind": "local", "files": files}
    # ~70 bytes a member would make a 100 000-slice record 7 MB: past MAX_LISTED members the
    # record keeps a digest of the list (a change is still seen, just not named).
    import hashlib
    import json

    text = json.dumps(files, separators=(",", ":"))
    return {
        "kind": "local",
        "count": len(files),
        "first": files[0]["name"],
        "last": files[-1]["name"],
        "total_size": sum(f["size"] for f in files),
        "files_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def zarr_fingerprint(root: Path, depth: int = 3) -> dict[str, Any]:
    """A Zarr store's metadata documents (``zarr.json``, ``.zarray``, ...) down to ``depth``
    folders: chunks are not listed (a store can hold millions), so a rewrite of chunks alone,
    metadata untouched, is not seen."""
    found: list[Path] = []

    def scan(folder: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.is_file() and entry.name in ZARR_METADATA:
                found.append(Path(entry.path))
            elif (
                entry.is_dir() and level < depth and not entry.name.isdigit() and entry.name != "c"
            ):
                scan(Path(entry.path), level + 1)

    scan(Path(root), 0)
    return local_files_fingerprint(found, root=Path(root)) | {"kind": "local-zarr"}


def remote_file_fingerprint(downloader: Any, url: str) -> dict[str, Any]:
    """Size, ETag and Last-Modified of a remote file: one HEAD over HTTP(S), one SIZE over
    FTP (which knows no validators). ``downloader`` is a ``transports.Downloader``."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "ftp":
        return {"url": url, "size": downloader.ftp.size(url)}
    head = downloader.http.head(url)
    return {
        "url": url,
        "size": head.size,
        "etag": head.etag,
        "last_modified": head.last_modified,
    }


def metadata_fingerprint(url: str, documents: Any, **extra: Any) -> dict[str, Any]:
    """A chunked archive (S3 Zarr, DVID, precomputed) by the metadata documents describe
    reads anyway (``.zarray``/``.zattrs``, ``info``): their sha256 over canonical JSON. Chunks
    are not listed (millions of keys), so chunks rewritten under unchanged metadata are not
    seen; DVID's versioned node (``uuid``) names immutable data."""
    import hashlib
    import json

    text = json.dumps(documents, sort_keys=True, separators=(",", ":"), default=str)
    return {"url": url, **extra, "metadata_sha256": hashlib.sha256(text.encode()).hexdigest()}


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short account of what differs between two fingerprints."""
    old_files = {f.get("name") or f.get("url"): f for f in old.get("files", [])}
    new_files = {f.get("name") or f.get("url"): f for f in new.get("files", [])}
    if old_files or new_files:
        added = [n for n in new_files if n not in old_files]
        removed = [n for n in old_files if n not in new_files]
        changed = [n for n in new_files if n in old_files and new_files[n] != old_files[n]]
        parts = []
        for what, names in (("changed", changed), ("added", added), ("removed", removed)):
            if names:
                shown = ", ".join(str(n) for n in names[:3])
                more = f" and {len(names) - 3} more" if len(names) > 3 else ""
                parts.append(f"{what}: {shown}{more}")
        if parts:
            return "source changed since it was ingested (" + "; ".join(parts) + ")"
        if list(old_files) != list(new_files):
            return "source changed since it was ingested (members reordered)"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return f"source changed since it was ingested ({', '.join(keys) or 'fingerprint'} differ)"


@dataclass
class SourceCheck:
    """The outcome of looking at the source of a complete volume again."""

    unchanged: bool
    change: str = ""
    info: Any = None
    """The ``VolumeInfo`` describe gave, reused by the ingestion that follows a change."""


def check_source(source: Any, ref: Any, fingerprint: dict[str, Any] | None) -> SourceCheck:
    """Describe ``ref`` again and compare with the complete record's ``fingerprint``.

    Unchanged also when nothing can be compared (no fingerprint then or now), or when the
    source cannot be reached: a complete volume is never replaced by an error for that."""
    if not fingerprint:
        return SourceCheck(True)
    label = f"{ref.source}/{ref.source_id}/{ref.name}"
    try:
        info = source.describe(ref)
    except (EmingestError, OSError) as err:
        log.warning("%s: cannot check the source for changes (%s); kept as complete", label, err)
        return SourceCheck(True)
    except Exception:  # a bug in a source must not stop the run nor lose a complete volume
        log.exception("%s: cannot check the source for changes; kept as complete", label)
        return SourceCheck(True)
    new = info.fingerprint
    if not new or new == fingerprint:
        return SourceCheck(True, info=info)
    return SourceCheck(False, describe_change(fingerprint, new), info)


def download_fingerprint_path(final: Path) -> Path:
    """Where the fingerprint of a cached download is kept: ``.<name>.source.json`` beside it."""
    return final.with_name(f".{final.name}.source.json")


def fetch_current(downloader: Any, url: str, name: str, fingerprint: dict[str, Any]) -> Any:
    """``downloader.fetch(url, name)``, but a cached copy downloaded when the remote file
    looked different (another size, ETag or Last-Modified) is dropped first: a changed source
    ingested again must not be read from the stale cache. The fingerprint of each download
    is kept beside it (``.<name>.source.json``)."""
    import json

    from emingest.transports.download import done_marker

    final = downloader.path_for(url, name)
    marker = download_fingerprint_path(final)
    try:
        before = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = None
    if fingerprint and before is not None and before != fingerprint and final.exists():
        log.info("%s: the remote file changed since it was cached; downloading it again", url)
        done_marker(final).unlink(missing_ok=True)
        final.unlink(missing_ok=True)
    size = fingerprint.get("size") if fingerprint else None
    got = downloader.fetch(url, name, expected_size=size if isinstance(size, int) else None)
    if fingerprint:
        from emingest.atomic import atomic_write_text

        atomic_write_text(marker, json.dumps(fingerprint))
    return got
