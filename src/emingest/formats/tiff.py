"""Multi-page TIFF, ImageJ TIFF (either byte order) and OME-TIFF, read by region.

Uncompressed contiguous files (the usual EM case) are read by offset (``os.preadv``): a region
read touches only its own bytes and a whole volume is never loaded, nor mapped. Other layouts
are read page by page.
"""

from __future__ import annotations

import os
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from emingest.errors import ConversionError, UnsupportedFormatError
from emingest.formats.base import ContiguousArrayFile, FileVolume, check_region
from emingest.formats.limits import DecodeLimits, check_tiff_claims
from emingest.formats.units import nm_per
from emingest.sources.base import Region

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")


def _spatial_axes(series: tifffile.TiffPageSeries, path: Path) -> tuple[int, int, int]:
    """Map the series to (z, y, x); other axes must have length 1."""
    shape = dict(zip(series.axes, series.shape, strict=True))
    extra = {a: n for a, n in shape.items() if a not in "ZYXIQ" and n != 1}
    if extra:
        raise UnsupportedFormatError(
            f"{path}: axes {series.axes} with shape {series.shape}: only single-channel "
            f"z-stacks are supported (non-singleton axes {extra})"
        )
    z = 1
    for a in "ZIQ":  # I and Q: tifffile's names for an unlabelled page index
        z *= shape.get(a, 1)
    return (z, shape.get("Y", 1), shape.get("X", 1))


def _imagej_voxel(tif: tifffile.TiffFile) -> tuple[tuple[float, float, float] | None, dict]:
    meta = tif.imagej_metadata or {}
    factor = nm_per(meta.get("unit"))
    page = tif.pages.first
    xres = page.tags.get("XResolution")
    yres = page.tags.get("YResolution")
    if factor is None or xres is None or yres is None:
        return None, meta

    def size(tag: Any) -> float:
        num, den = tag.value
        return den / num * factor

    z = float(meta.get("spacing", 1.0)) * factor
    return (z, size(yres), size(xres)), meta


def _ome_voxel(tif: tifffile.TiffFile) -> tuple[tuple[float, float, float] | None, dict]:
    xml = tif.ome_metadata or ""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, {"ome_xml": xml}
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels")), None)
    if pixels is None:
        return None, {"ome_xml": xml}
    sizes: list[float | None] = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        factor = nm_per(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if value is None or factor is None:
            sizes.append(None)
        else:
            sizes.append(float(value) * factor)
    attrs = dict(pixels.attrib)
    if sizes[1] is None or sizes[2] is None:
        return None, {"ome_pixels": attrs}
    return (sizes[0] or sizes[2], sizes[1], sizes[2]), {"ome_pixels": attrs}


class TiffVolume(FileVolume):
    def __init__(self, path: Path, limits: DecodeLimits | None = None) -> None:
        try:
            self._tif = tifffile.TiffFile(path)
            series = self._tif.series[0]
        except (tifffile.TiffFileError, ValueError, IndexError, struct_error()) as err:
            raise UnsupportedFormatError(f"{path}: not a readable TIFF ({err})") from err
        shape = _spatial_axes(series, Path(path))
        try:
            _check_complete_ifd_chain(self._tif, Path(path))
        except tifffile.TiffFileError as err:
            raise ConversionError(f"{path}: truncated or corrupt TIFF: {err}") from err
        dtype = np.dtype(series.dtype)
        # what the header claims, checked before any pixel is decoded (formats/limits.py)
        check_tiff_claims(Path(path), series.keyframe, shape, dtype, limits or DecodeLimits())
        if self._tif.is_ome:
            voxel, header = _ome_voxel(self._tif)
            origin = "OME-XML PhysicalSize*"
        elif self._tif.is_imagej:
            voxel, header = _imagej_voxel(self._tif)
            origin = "ImageJ spacing/unit and X/YResolution"
        else:
            voxel, header, origin = None, {}, ""
        header = {
            k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
            for k, v in header.items()
        }
        header["byteorder"] = self._tif.byteorder
        header["bigtiff"] = self._tif.is_bigtiff
        super().__init__(
            path=Path(path),
            shape=shape,
            dtype=dtype.newbyteorder("="),
            voxel_size_nm=voxel,
            voxel_size_origin=origin if voxel else "",
            format="tiff",
            header=header,
        )
        self._series = series
        self._lock = threading.Lock()
        self._mm: ContiguousArrayFile | None = None
        file_size = os.path.getsize(path)
        offset = series.dataoffset
        if offset is not None and series.keyframe.compression == 1:  # 1: uncompressed
            needed = offset + series.nbytes
            if needed > file_size:
                raise ConversionError(
                    f"{path}: truncated TIFF: pixel data needs {needed} bytes, file has {file_size}"
                )
            swapped = dtype.newbyteorder(">" if self._tif.byteorder == ">" else "<")
            self._mm = ContiguousArrayFile(Path(path), offset, shape, swapped)
        else:
            self._pages = series.pages
            last = self._pages[len(self._pages) - 1]
            if last is None:
                raise ConversionError(f"{path}: the series' last page is missing")
            ends = [o + c for o, c in zip(last.dataoffsets, last.databytecounts, strict=True)]
            if ends and max(ends) > file_size:
                raise ConversionError(
                    f"{path}: truncated TIFF: page {len(self._pages) - 1} ends at byte "
                    f"{max(ends)}, file has {file_size}"
                )

    def read_into(self, region: Region, out: np.ndarray) -> np.ndarray:
        if self._mm is not None:
            return self._mm.read_into(region, out)
        return super().read_into(region, out)

    def read(self, region: Region) -> np.ndarray:
        check_region(region, self.shape)
        if self._mm is not None:
            return self._mm.read(region)
        zs, ys, xs = region
        out = np.empty(
            (zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), dtype=self.dtype
        )
        for i, z in enumerate(range(zs.start, zs.stop)):
            frame = self._pages[z]
            if frame is None:
                raise ConversionError(f"{self.path}: page {z} is missing from the series")
            try:
                with self._lock:  # tifffile's file handle is shared by the pages
                    page = frame.asarray()
            except Exception as err:
                raise ConversionError(f"{self.path}: page {z} cannot be decoded: {err}") from err
            out[i] = page.reshape(self.shape[1:])[ys, xs]
        return out

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._tif.close()


def _check_complete_ifd_chain(tif: tifffile.TiffFile, path: Path) -> None:
    """A file cut short loses its later pages, and tifffile quietly reads fewer (with a logged
    warning). The last page it read still points at the next IFD: if that pointer is not 0,
    pages are missing and the file is truncated or corrupt."""
    import struct

    fmt = tif.tiff
    pages = tif.pages
    last = pages[len(pages) - 1]
    fh = tif.filehandle
    size = os.path.getsize(path)
    fh.seek(last.offset)
    (ntags,) = struct.unpack(fmt.tagnoformat, fh.read(fmt.tagnosize))
    pointer_at = last.offset + fmt.tagnosize + ntags * fmt.tagsize
    if pointer_at + fmt.offsetsize > size:
        raise ConversionError(f"{path}: truncated TIFF: the IFD of page {len(pages) - 1} is cut")
    fh.seek(pointer_at)
    (next_ifd,) = struct.unpack(fmt.offsetformat, fh.read(fmt.offsetsize))
    if next_ifd != 0:
        raise ConversionError(
            f"{path}: truncated or corrupt TIFF: only {len(pages)} pages can be read; the next "
            f"page's IFD is at byte {next_ifd}, the file has {size} bytes"
        )


def struct_error() -> type[Exception]:
    import struct

    return struct.error


def is_tiff(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return False
    return magic[:2] in (b"II", b"MM") and re.match(rb"(II[*+]\x00|MM\x00[*+])", magic) is not None
