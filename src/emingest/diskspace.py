"""A full disk is a local storage error: recognised, reported at once, never retried.

``ENOSPC`` (no space left), ``EDQUOT`` (quota exceeded), ``EROFS`` (read-only file system) and
``EFBIG`` (a file size limit, e.g. ``RLIMIT_FSIZE``) become
:class:`~emingest.errors.LocalStorageError` with the path and, when known, the bytes still
needed. Retrying does not free space, so the transports never retry these (a download used to
retry six times, 41 s for a 256 MB file, as if the network had failed).

Also here: the free-space checks made before a run and before each volume, and the last-resort
write of a volume's error record when the disk is too full for the usual temp-file-and-rename.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from emingest.errors import LocalStorageError, SourceError

log = logging.getLogger(__name__)

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
# tensorstore and sqlite report the condition as text, not as an OSError
_FULL_TEXTS = (
    "no space left on device",
    "disk quota exceeded",
    "read-only file system",
    "file too large",
    "database or disk is full",
)
_WHAT = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "no space left (disk quota exceeded)",
    errno.EFBIG: "no space left for the file (file size limit, EFBIG)",
    errno.EROFS: "no space left to write: read-only file system",
}
PYRAMID_FACTOR = 8 / 7
"""A 2x pyramid adds 1/8 + 1/64 + ... of level 0; EM barely compresses (zstd ratio ~1.2)."""


def storage_cause(err: BaseException | None) -> BaseException | None:
    """The full-disk error behind ``err`` (itself, its cause or context), else None."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in FULL_ERRNOS:
            return err
        if isinstance(err, LocalStorageError):
            return err
        # a remote answer may quote its own full disk (HTTP 507): that is the archive's
        text = "" if isinstance(err, SourceError) else str(err).lower()
        if any(t in text for t in _FULL_TEXTS):
            return err
        err = err.__cause__ or err.__context__
    return None


def _errno_of(err: BaseException) -> int:
    code = getattr(err, "errno", None)
    if isinstance(code, int) and code in FULL_ERRNOS:
        return code
    text = str(err).lower()
    if "quota" in text:
        return errno.EDQUOT
    if "read-only" in text:
        return errno.EROFS
    if "file too large" in text:
        return errno.EFBIG
    return errno.ENOSPC


def free_bytes(path: Path | str) -> int | None:
    """Free bytes for an unprivileged writer on the file system holding ``path`` (or its
    nearest existing parent); None when nothing of it exists."""
    p = Path(path).absolute()
    for candidate in (p, *p.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def storage_error(
    err: BaseException, *, path: Path | str | None = None, needed_bytes: int | None = None
) -> LocalStorageError:
    """``err`` (a full-disk error) as a :class:`LocalStorageError` saying what, where, how
    much and what to do."""
    code = _errno_of(err)
    if isinstance(err, LocalStorageError):
        path = path if path is not None else err.path
        needed_bytes = needed_bytes if needed_bytes is not None else err.needed_bytes
    where = str(path) if path is not None else getattr(err, "filename", None)
    parts = [f"{_WHAT[code]}: {where}" if where else _WHAT[code]]
    if needed_bytes is not None and needed_bytes > 0:
        parts.append(f"{_human(needed_bytes)} more needed")
    free = free_bytes(path) if path is not None else None
    if free is not None and code != errno.EROFS:
        parts.append(f"{_human(free)} free there")
    # an OSError (or ours, re-raised with more to say) is its errno's text; tensorstore's and
    # sqlite's messages are kept whole, as they name the file
    plain = isinstance(err, LocalStorageError) or getattr(err, "errno", None) in FULL_ERRNOS
    detail = os.strerror(code) if plain else str(err)
    message = (
        "; ".join(parts)
        + f" ({detail}). Free space (or point storage.data_root / transport.cache_dir "
        "elsewhere) and run the same command again: it resumes where it stopped"
    )
    return LocalStorageError(
        message, path=str(where) if where else None, needed_bytes=needed_bytes, errno=code
    )


def failure_message(err: BaseException) -> str:
    """What a volume's record says after ``error:``: ``no space left ...`` for a full disk
    (whatever layer saw it: a download, tensorstore, the journal), else ``<Class>: <message>``."""
    if storage_cause(err) is not None:
        storage = err if isinstance(err, LocalStorageError) else storage_error(err)
        return str(storage)
    return f"{type(err).__name__}: {err}"


def write_record_in_place(path: Path, record: BaseModel) -> bool:
    """Overwrite the existing record file without allocating: the usual atomic write needs a
    new temp file, which a full disk refuses. The record is written compact (the stub was
    indented, so it is shorter), its status shortened if it still does not fit, and padded
    with spaces (valid JSON) to the old length. Not atomic; used only when the disk is full."""
    try:
        old_size = path.stat().st_size
    except OSError:
        return False
    text = record.model_dump_json()
    status = str(getattr(record, "status", ""))
    if len(text.encode()) > old_size:
        budget = old_size - len(text.encode()) + len(status.encode())
        if budget < len("error: no space left") or not status.startswith("error: "):
            return False
        short = record.model_copy(update={"status": status[:budget].rstrip()})
        text = short.model_dump_json()
        if len(text.encode()) > old_size:
            return False
    data = text.encode().ljust(old_size, b" ")
    try:
        with open(path, "r+b") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        log.error("%s: cannot update this record in place either: %s", path, err)
        return False
    return True


def space_warnings(needs: Iterable[tuple[Path, int]], *, floor_bytes: int = 0) -> list[str]:
    """A line for each file system whose free space is below what is planned for it:
    ``needs`` pairs a folder with bytes to be written below it (folders on one file system
    are added up); ``floor_bytes``: warn below this much free space whatever the plan."""
    by_fs: dict[int, tuple[list[Path], int, int]] = {}
    for folder, nbytes in needs:
        anchor = _existing(folder)
        if anchor is None:
            continue
        dev = anchor.stat().st_dev
        folders, total, _ = by_fs.get(dev, ([], 0, 0))
        if folder not in folders:
            folders.append(folder)
        by_fs[dev] = (folders, total + max(0, nbytes), shutil.disk_usage(anchor).free)
    out = []
    for folders, total, free in by_fs.values():
        where = ", ".join(str(f) for f in folders)
        if free < total:
            out.append(
                f"low disk space: {_human(free)} free under {where}, the planned volumes need "
                f"about {_human(total)}; volumes will fail with 'no space left' once it is used"
            )
        elif free < floor_bytes:
            out.append(
                f"low disk space: {_human(free)} free under {where} "
                f"(less than limits.min_free_bytes = {_human(floor_bytes)})"
            )
    return out


def run_space_warnings(settings: Any) -> list[str]:
    """Before a run: the data root and the download cache against ``limits.min_free_bytes``.
    What each volume needs is known only once it is described (EPFL's only metadata is the
    file itself), so each volume is checked again then (:func:`warn_if_short_of_space`)."""
    root = Path(settings.storage.local_root)  # a bucket's own space is not ours to check
    folders = [root, Path(settings.transport.cache_dir or root / ".cache")]
    return space_warnings([(f, 0) for f in folders], floor_bytes=settings.limits.min_free_bytes)


def volume_needs_bytes(nbytes: int, *, raw_bytes: int = 0) -> int:
    """Bytes a volume of ``nbytes`` (level 0, uncompressed) may take: its pyramid plus the raw
    files still to be downloaded."""
    return int(nbytes * PYRAMID_FACTOR) + max(0, raw_bytes)


def warn_if_short_of_space(folder: Path, nbytes: int, label: str) -> bool:
    """Before a volume is written: a warning when ``folder``'s file system has less free space
    than the volume may take. Returns whether it warned."""
    lines = space_warnings([(folder, volume_needs_bytes(nbytes))])
    for line in lines:
        log.warning("%s: %s", label, line)
    return bool(lines)


def _existing(path: Path) -> Path | None:
    p = Path(path).absolute()
    return next((c for c in (p, *p.parents) if c.exists()), None)


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


__all__ = [
    "FULL_ERRNOS",
    "failure_message",
    "free_bytes",
    "run_space_warnings",
    "space_warnings",
    "storage_cause",
    "storage_error",
    "volume_needs_bytes",
    "warn_if_short_of_space",
    "write_record_in_place",
]
