"""One 2-D slice file of a series (Gatan DM3/DM4 or TIFF), and one file opened as a volume.

Acquisitions such as SBF-SEM are published as one file per slice: :func:`open_slice` reads
what a slice says of itself (plane shape, dtype, pixel size, slice thickness from the vendor
tags) without its pixels, so a series can be checked and stacked before it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emingest.errors import UnsupportedFormatError
from emingest.formats.base import FileVolume
from emingest.formats.dm3 import DM_SUFFIXES, DmImage, DmVolume, read_dm_header
from emingest.formats.mrc import MRC_SUFFIXES, MrcVolume
from emingest.formats.tiff import TiffVolume


@dataclass
class SliceFile:
    """What one 2-D slice file says of itself."""

    path: Path
    format: str
    plane_shape: tuple[int, int]
    dtype: np.dtype[Any]
    pixel_size_nm: tuple[float, float] | None
    slice_thickness_nm: float | None
    slice_thickness_origin: str
    header: dict[str, Any]
    dm: DmImage | None = None

    def read(self, ys: slice, xs: slice) -> np.ndarray:
        if self.dm is not None:
            return self.dm.read((slice(0, 1), ys, xs))[0]
        vol = TiffVolume(self.path)
        try:
            return vol.read((slice(0, 1), ys, xs))[0]
        finally:
            vol.close()


def open_slice(path: Path) -> SliceFile:
    suffix = path.suffix.lower()
    if suffix in DM_SUFFIXES:
        dm = read_dm_header(path)
        if dm.depth != 1:
            raise UnsupportedFormatError(
                f"{path}: a {dm.shape} DM stack in a slice series; ingest each file as "
                "a volume instead (EMPIAR: sources.empiar.stack_slices = false)"
            )
        return SliceFile(
            path,
            f"dm{dm.dm_version}",
            dm.plane_shape,
            dm.dtype.newbyteorder("="),
            dm.pixel_size_nm,
            dm.slice_thickness_nm,
            dm.slice_thickness_origin,
            {"calibration": dm.calibration, "image_tags": dm.tags},
            dm,
        )
    vol = TiffVolume(path)
    try:
        if vol.shape[0] != 1:
            raise UnsupportedFormatError(f"{path}: a {vol.shape[0]}-page TIFF in a slice series")
        pixel = (vol.voxel_size_nm[1], vol.voxel_size_nm[2]) if vol.voxel_size_nm else None
        return SliceFile(path, "tiff", vol.shape[1:], vol.dtype, pixel, None, "", vol.header)
    finally:
        vol.close()


def open_volume_file(path: Path, z_spacing_nm: float | None) -> FileVolume:
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        return MrcVolume(path)
    if suffix in DM_SUFFIXES:
        return DmVolume(path, z_spacing_nm)
    return TiffVolume(path)


__all__ = ["SliceFile", "open_slice", "open_volume_file"]
