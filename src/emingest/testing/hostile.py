"""Hostile inputs for the fault tests and benchmarks: files that lie about their size."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def deflate_bomb(path: Path, width: int = 1_000_000, length: int = 1_000_000) -> Path:
    """A classic little-endian TIFF of one deflate strip of zeros claiming ``width`` x
    ``length`` uint8 pixels: about 200 bytes on disk, 1e12 bytes decoded by default. Written
    byte by byte (tifffile would refuse to write such a claim)."""
    data = zlib.compress(b"\0" * 65536, 9)
    tags = [
        (256, 4, width),  # ImageWidth, LONG
        (257, 4, length),  # ImageLength
        (258, 3, 8),  # BitsPerSample, SHORT
        (259, 3, 8),  # Compression: deflate
        (262, 3, 1),  # Photometric: min-is-black
        (273, 4, 0),  # StripOffsets (set below)
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, length),  # RowsPerStrip: one strip
        (279, 4, len(data)),  # StripByteCounts
    ]
    data_at = 8 + 2 + 12 * len(tags) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)))
    for tag, kind, value in tags:
        value = data_at if tag == 273 else value
        if kind == 3:
            out += struct.pack("<HHIHH", tag, kind, 1, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, 1, value)
    out += struct.pack("<I", 0) + data
    Path(path).write_bytes(bytes(out))
    return Path(path)


__all__ = ["deflate_bomb"]
