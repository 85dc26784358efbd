"""Decoders for local files: each gives a region reader plus what its header says."""

from __future__ import annotations

from pathlib import Path

from emingest.errors import EntryNotFoundError, UnsupportedFormatError
from emingest.formats.base import FileVolume
from emingest.formats.limits import DecodeLimits


def open_volume(
    path: str | Path, *, series: int | None = None, limits: DecodeLimits | None = None
) -> FileVolume:
    """Open a TIFF, MRC, Zarr array/OME-Zarr image, or a folder/glob of 2-D images.
    ``series`` picks one series of a TIFF that has several (see ``TiffVolume``); ``limits``:
    what a TIFF header may claim before it is refused (the ``[limits]`` settings)."""
    from emingest.formats.mrc import MRC_SUFFIXES, MrcVolume
    from emingest.formats.stack import ImageStackVolume, stack_members
    from emingest.formats.tiff import TiffVolume, is_tiff
    from emingest.formats.zarr_array import ZarrVolume, is_zarr

    p = Path(path)
    if p.is_dir():
        if is_zarr(p):
            return ZarrVolume(p)
        return ImageStackVolume(p)
    if not p.exists():
        if any(ch in str(path) for ch in "*?["):
            if not stack_members(path):
                raise EntryNotFoundError(f"{path}: the pattern matches no image")
            return ImageStackVolume(path)
        raise EntryNotFoundError(f"{path}: no such file or folder")
    if p.suffix.lower() in MRC_SUFFIXES:
        return MrcVolume(p)
    if is_tiff(p):
        return TiffVolume(p, series, limits=limits)
    raise UnsupportedFormatError(
        f"{p}: not a TIFF, MRC or Zarr input (suffix {p.suffix or 'none'}); "
        "for 2-D images pass their folder or a glob"
    )


__all__ = ["FileVolume", "open_volume"]
