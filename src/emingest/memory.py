"""Process-wide memory settings that keep peak RSS set by the tile budget.

glibc gives every thread that allocates its own malloc arena (up to 8 per core). The pipeline's
workers and tensorstore's pool each allocate and free tile- and chunk-sized buffers, and the
freed memory stays spread over many arenas, so RSS crept up with the length of a run: a 4 GiB
ingest peaked at 830-862 MiB, against 564-602 MiB with two arenas, and was no slower. No
Python library exposes ``mallopt``, hence ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h
_done = False


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (before threads start allocating); True when applied.
    A no-op elsewhere (musl, macOS, Windows) and when ``MALLOC_ARENA_MAX`` is set already."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    if "MALLOC_ARENA_MAX" in os.environ:  # the user's choice wins
        _done = True
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_ARENA_MAX, arenas))
    if not _done:
        log.debug("mallopt(M_ARENA_MAX) refused")
    return _done


__all__ = ["limit_malloc_arenas"]
