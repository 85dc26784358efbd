"""Decompression bombs and absurd headers: what a file claims is checked before it is decoded.

A TIFF header is a promise about sizes: image width and length, samples, strips or tiles
with their byte counts. A deflate-compressed file of a few hundred bytes can claim
1e6 x 1e6 pixels; decoding it allocated 2.7-3.0 GiB and ended in ``MemoryError`` after 30-45 s.
:func:`check_tiff_claims` compares the claims with what the file can hold (stored bytes vs
decoded bytes: a compression ratio) and with :class:`DecodeLimits` (the ``[limits]``
settings) before any pixel is decoded, and refuses with a
:class:`~emingest.errors.ConversionError` naming the file and the claimed size.

Uncompressed files are read by offset in bounded regions (never decoded whole), so only the
volume and plane limits apply to them; a compressed page is decoded whole by tifffile, so its
plane must fit in ``max_decode_bytes`` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emingest.errors import ConversionError

GiB = 1 << 30


@dataclass(frozen=True)
class DecodeLimits:
    """The ``[limits]`` settings a decoder needs (defaults equal to the settings' defaults)."""

    max_plane_bytes: int = 4 * GiB
    max_volume_bytes: int = 64 << 40
    max_decode_bytes: int = 1 * GiB
    max_compression_ratio: float = 2000.0

    @classmethod
    def from_settings(cls, limits: Any) -> DecodeLimits:
        """From a ``config.LimitSettings`` (or anything with the same attributes)."""
        return cls(
            max_plane_bytes=int(limits.max_plane_bytes),
            max_volume_bytes=int(limits.max_volume_bytes),
            max_decode_bytes=int(limits.max_decode_bytes),
            max_compression_ratio=float(limits.max_compression_ratio),
        )


def _gib(n: float) -> str:
    return f"{n / GiB:,.3g} GiB"


def _refuse(path: Path, what: str, setting: str) -> ConversionError:
    return ConversionError(
        f"{path}: refused before decoding: {what}. The header is absurd or the file is a "
        f"decompression bomb; if the file is genuine, raise limits.{setting}"
    )


def check_claimed_size(
    path: Path, shape: tuple[int, int, int], dtype: np.dtype[Any], limits: DecodeLimits
) -> None:
    """The volume and plane a header claims, against the limits (any format)."""
    item = np.dtype(dtype).itemsize
    plane = shape[1] * shape[2] * item
    volume = shape[0] * plane
    claim = f"{shape[0]} x {shape[1]} x {shape[2]} {np.dtype(dtype).name}"
    if volume > limits.max_volume_bytes:
        raise _refuse(
            path,
            f"the header claims {claim} ({_gib(volume)}), more than "
            f"max_volume_bytes = {_gib(limits.max_volume_bytes)}",
            "max_volume_bytes",
        )
    if plane > limits.max_plane_bytes:
        raise _refuse(
            path,
            f"the header claims planes of {shape[1]} x {shape[2]} ({_gib(plane)} each, "
            f"volume {claim}), more than max_plane_bytes = {_gib(limits.max_plane_bytes)}",
            "max_plane_bytes",
        )


def check_tiff_claims(
    path: Path,
    page: Any,
    shape: tuple[int, int, int],
    dtype: np.dtype[Any],
    limits: DecodeLimits,
) -> None:
    """Before decoding ``page`` (a tifffile page or frame, the series' first) of a volume of
    ``shape``: size limits, the largest strip or tile, and the compression ratio its byte
    counts allow."""
    check_claimed_size(path, shape, dtype, limits)
    if int(getattr(page, "compression", 1)) == 1:
        return  # uncompressed: read by offset, region by region, never decoded whole
    item = np.dtype(dtype).itemsize
    plane = shape[1] * shape[2] * item
    if plane > limits.max_decode_bytes:
        raise _refuse(
            path,
            f"each compressed page decodes to {shape[1]} x {shape[2]} ({_gib(plane)}), more "
            f"than max_decode_bytes = {_gib(limits.max_decode_bytes)}",
            "max_decode_bytes",
        )
    counts = [int(c) for c in getattr(page, "databytecounts", ()) or ()]
    if not counts:
        raise ConversionError(f"{path}: a compressed page without strip or tile byte counts")
    pieces = len(counts)
    piece = _piece_bytes(page, item, plane, pieces)
    if piece > limits.max_decode_bytes:
        raise _refuse(
            path,
            f"a strip or tile decodes to {_gib(piece)}, more than max_decode_bytes = "
            f"{_gib(limits.max_decode_bytes)}",
            "max_decode_bytes",
        )
    stored = max(1, sum(counts))
    ratio = plane / stored
    if ratio > limits.max_compression_ratio:
        raise _refuse(
            path,
            f"a page claims {shape[1]} x {shape[2]} ({_gib(plane)}) from {stored} stored "
            f"bytes, a compression ratio of {ratio:,.0f} (more than max_compression_ratio = "
            f"{limits.max_compression_ratio:g})",
            "max_compression_ratio",
        )


def _piece_bytes(page: Any, item: int, plane: int, pieces: int) -> int:
    """Decoded bytes of one strip or tile, from the page's tags (whole plane when unsure)."""
    samples = int(getattr(page, "samplesperpixel", 1) or 1)
    if getattr(page, "is_tiled", False):
        tile = [int(getattr(page, a, 0) or 0) for a in ("tilelength", "tilewidth")]
        depth = int(getattr(page, "tiledepth", 1) or 1)
        if all(tile):
            return math.prod(tile) * depth * samples * item
    rows = int(getattr(page, "rowsperstrip", 0) or 0)
    width = int(getattr(page, "imagewidth", 0) or 0)
    if rows and width:
        return min(rows, int(getattr(page, "imagelength", rows) or rows)) * width * samples * item
    return plane if pieces <= 1 else -(-plane // pieces)


__all__ = ["DecodeLimits", "check_claimed_size", "check_tiff_claims"]
