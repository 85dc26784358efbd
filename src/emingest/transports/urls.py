"""Requests stay inside the archive: every URL built from an archive's answer stays below its base.

An archive's answer names folders and files (EMPIAR's imageset ``directory``, IDR's original
file paths, OpenOrganelle's multiscale ``path``, a precomputed scale's ``key``, listing
entries). A hostile or broken answer could name ``../../../../tmp/x``, ``%2e%2e/`` or
``https://elsewhere/``; building a URL from it by string concatenation would send a request
outside the archive (the server or a proxy normalises ``..``). :func:`join_below` is the one
door every source uses: it refuses such a name with :class:`~emingest.errors.RemoteFormatError`
*before* any request is made.

The relative part is a literal path (each segment is percent-encoded here). Segments that
decode (once or twice, as some servers and proxies do) to ``.``, ``..`` or something holding a
slash or backslash are refused, as are absolute paths, URLs with a scheme or host, NUL and
control characters.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse

from emingest.errors import RemoteFormatError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _refuse(base: str, relative: str, why: str) -> RemoteFormatError:
    return RemoteFormatError(
        f"refused the path {relative!r} from the archive's answer: {why}; it would leave "
        f"{base}. No request was sent. The archive's metadata is malformed or hostile."
    )


def _check_segment(base: str, relative: str, segment: str) -> None:
    decoded = segment
    for _ in range(2):  # once as the server does, once more as a double-decoding proxy would
        decoded = urllib.parse.unquote(decoded)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded:
            raise _refuse(base, relative, f"segment {segment!r} is or hides a path step")
        if _CONTROL.search(decoded):
            raise _refuse(base, relative, "NUL or control character")


def relative_below(base: str, relative: str) -> str:
    """``relative`` checked and normalised (no empty, ``.`` or ``..`` segments, no leading
    slash): the literal path :func:`join_below` appends. Raises :class:`RemoteFormatError`."""
    if not isinstance(relative, str):
        raise _refuse(base, str(relative), "not a string")
    if _CONTROL.search(relative):
        raise _refuse(base, relative, "NUL or control character")
    if "\\" in relative:
        raise _refuse(base, relative, "backslash in a path")
    parts = urllib.parse.urlsplit(relative)
    if parts.scheme or parts.netloc or relative.startswith("//"):
        raise _refuse(base, relative, "a URL with its own scheme or host")
    if relative.startswith("/"):
        raise _refuse(base, relative, "an absolute path")
    segments = [s for s in relative.split("/") if s not in ("", ".")]
    for segment in segments:
        _check_segment(base, relative, segment)
    return "/".join(segments)


def join_below(base: str, relative: str) -> str:
    """``base`` + ``/`` + ``relative`` (each segment percent-encoded), refused with
    :class:`RemoteFormatError` when ``relative`` could leave ``base``. A trailing slash of
    ``relative`` is kept (folders). An empty ``relative`` gives ``base`` itself."""
    rel = relative_below(base, relative)
    root = base.rstrip("/")
    if not rel:
        return root + ("/" if relative.endswith("/") else "")
    tail = "/".join(urllib.parse.quote(s, safe="") for s in rel.split("/"))
    url = f"{root}/{tail}" + ("/" if relative.endswith("/") else "")
    check_below(base, url)
    return url


def check_below(base: str, url: str) -> str:
    """``url`` unchanged when it lies below ``base`` (same scheme, host and port, and a path
    inside base's path after normalising ``..`` and percent-encoded dots and slashes); else
    :class:`RemoteFormatError`. For URLs an archive hands over whole."""
    b = urllib.parse.urlsplit(base)
    u = urllib.parse.urlsplit(url)
    if (u.scheme.lower(), (u.netloc or "").lower()) != (b.scheme.lower(), (b.netloc or "").lower()):
        raise _refuse(base, url, "another scheme, host or port")
    root = posixpath.normpath("/" + urllib.parse.unquote(b.path)).rstrip("/") + "/"
    decoded = urllib.parse.unquote(urllib.parse.unquote(u.path))
    if "\\" in decoded or _CONTROL.search(decoded):
        raise _refuse(base, url, "backslash, NUL or control character")
    path = posixpath.normpath("/" + decoded)
    if not (path + "/").startswith(root) or any(s == ".." for s in decoded.split("/")):
        raise _refuse(base, url, "a path outside the base")
    return url


__all__ = ["check_below", "join_below", "relative_below"]
