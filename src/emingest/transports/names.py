"""Safe local names: a name from a listing or a URL never escapes the folder it is written to.

Archives hand us file names (directory listings, ``original_file_paths``, the last part of a
URL). Before any of them becomes a local path it is checked here; ``..``, absolute paths,
drive letters, backslashes, NUL and control characters are refused with
:class:`~emingest.errors.RemoteFormatError`, never cleaned up silently.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path, PurePosixPath

from emingest.errors import RemoteFormatError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_COMPONENT_BYTES = 255


def _refuse(name: str, why: str, where: str) -> RemoteFormatError:
    at = f" (from {where})" if where else ""
    return RemoteFormatError(
        f"refused unsafe file name {name!r}{at}: {why}; nothing was written. "
        "The archive's listing or URL is malformed or hostile."
    )


def safe_name(name: str, *, where: str = "") -> str:
    """``name`` unchanged if it is one safe path component, else :class:`RemoteFormatError`."""
    if not isinstance(name, str) or name == "":
        raise _refuse(str(name), "empty name", where)
    if _CONTROL.search(name):
        raise _refuse(name, "NUL or control character", where)
    if "/" in name or "\\" in name:
        raise _refuse(name, "path separator in a file name", where)
    if name in (".", ".."):
        raise _refuse(name, "relative path component", where)
    if _DRIVE.match(name):
        raise _refuse(name, "drive letter", where)
    if len(name.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
        raise _refuse(name, f"longer than {MAX_COMPONENT_BYTES} bytes", where)
    return name


def safe_relative_path(name: str, *, where: str = "") -> PurePosixPath:
    """A relative path (``a/b/c.tif``) whose every part is a :func:`safe_name`."""
    if not isinstance(name, str) or name == "":
        raise _refuse(str(name), "empty name", where)
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise _refuse(name, "absolute path", where)
    if "\\" in name:
        raise _refuse(name, "backslash in a path", where)
    parts = [p for p in name.split("/") if p != ""]
    if not parts:
        raise _refuse(name, "empty name", where)
    for part in parts:
        safe_name(part, where=where or name)
    return PurePosixPath(*parts)


def local_path(root: Path, name: str, *, where: str = "") -> Path:
    """``root / name`` for a relative ``name`` that stays inside ``root`` (checked twice)."""
    rel = safe_relative_path(name, where=where)
    target = Path(root) / rel
    resolved_root = Path(root).resolve()
    resolved = target.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise _refuse(name, f"resolves outside {root}", where)
    return target


def name_from_url(url: str) -> str:
    """The decoded last part of a URL's path, checked with :func:`safe_name`."""
    path = urllib.parse.urlsplit(url).path
    last = path.rstrip("/").rsplit("/", 1)[-1] if path.rstrip("/") else ""
    return safe_name(urllib.parse.unquote(last), where=url)


__all__ = ["local_path", "name_from_url", "safe_name", "safe_relative_path"]
