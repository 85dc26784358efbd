"""Multi-page TIFF, ImageJ TIFF (either byte order) and OME-TIFF, read by region.

Uncompressed contiguous files (the usual EM case) are read by offset (``os.preadv``): a region
read touches only its own bytes and a whole volume is never loaded, nor mapped. Other layouts
are read page by page.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import tifffile

from emingest.errors import ConversionError, EntryNotFoundError, UnsupportedFormatError
from emingest.formats.base import ContiguousArrayFile, FileVolume, check_region
from emingest.formats.limits import DecodeLimits, check_tiff_claims
from emingest.formats.tiff_calibration import tiff_calibration
from emingest.regions import Region

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


def data_series(tif: tifffile.TiffFile) -> list[int]:
    """Indices of the series that hold images: a series made only of reduced-resolution pages
    (a preview or thumbnail of the same image, NewSubfileType bit 0) is not data."""
    out = []
    for i, series in enumerate(tif.series):
        keyframe = series.keyframe
        if keyframe is not None and getattr(keyframe, "is_reduced", False):
            continue
        out.append(i)
    return out


def tiff_series(path: Path) -> list[int]:
    """The data series of the TIFF at ``path`` (see :func:`data_series`)."""
    try:
        with tifffile.TiffFile(path) as tif:
            return data_series(tif)
    except (tifffile.TiffFileError, ValueError, IndexError, struct_error()) as err:
        raise UnsupportedFormatError(f"{path}: not a readable TIFF ({err})") from err


class TiffVolume(FileVolume):
    """One series of a TIFF as a (z, y, x) volume.

    ``series=None`` accepts only a file with one data series: a TIFF with several (pages of
    different shapes or dtypes, or series written one after another) raises
    :class:`ConversionError` rather than read the first alone; ask for each by index
    (``emingest ingest local`` makes each series a volume of its own). ``limits``: what the
    header may claim before it is refused (``formats/limits.py``).
    """

    def __init__(
        self, path: Path, series: int | None = None, *, limits: DecodeLimits | None = None
    ) -> None:
        try:
            self._tif = tifffile.TiffFile(path)
            indices = data_series(self._tif)
        except (tifffile.TiffFileError, ValueError, IndexError, struct_error()) as err:
            raise UnsupportedFormatError(f"{path}: not a readable TIFF ({err})") from err
        if series is None and len(indices) > 1:
            shapes = ", ".join(
                f"{self._tif.series[i].shape} {self._tif.series[i].dtype}" for i in indices
            )
            self._tif.close()
            raise ConversionError(
                f"{path}: {len(indices)} image series ({shapes}), e.g. pages of different "
                "shapes; reading only the first would drop the others. Ingest it with "
                "`emingest ingest local`, which makes each series a volume, or split the file"
            )
        if not indices:
            self._tif.close()
            raise UnsupportedFormatError(f"{path}: not a readable TIFF (no image in it)")
        index = series if series is not None else indices[0]
        if not 0 <= index < len(self._tif.series):
            self._tif.close()
            raise EntryNotFoundError(
                f"{path}: no series {index} (the file has {len(self._tif.series)})"
            )
        page_series = self._tif.series[index]
        shape = _spatial_axes(page_series, Path(path))
        try:
            _check_complete_ifd_chain(self._tif, Path(path))
        except tifffile.TiffFileError as err:
            raise ConversionError(f"{path}: truncated or corrupt TIFF: {err}") from err
        dtype = np.dtype(page_series.dtype)
        # what the header claims, checked before any pixel is decoded (formats/limits.py)
        check_tiff_claims(Path(path), page_series.keyframe, shape, dtype, limits or DecodeLimits())
        voxel, origin, header = tiff_calibration(self._tif)
        header["byteorder"] = self._tif.byteorder
        header["bigtiff"] = self._tif.is_bigtiff
        if len(self._tif.series) > 1:
            header["series"] = {
                "index": index,
                "count": len(self._tif.series),
                "axes": page_series.axes,
                "shape": list(page_series.shape),
            }
        super().__init__(
            path=Path(path),
            shape=shape,
            dtype=dtype.newbyteorder("="),
            voxel_size_nm=voxel,
            voxel_size_origin=origin if voxel else "",
            format="tiff",
            header=header,
        )
        self._series = page_series
        self._lock = threading.Lock()
        self._mm: ContiguousArrayFile | None = None
        file_size = os.path.getsize(path)
        offset = page_series.dataoffset
        if offset is not None and page_series.keyframe.compression == 1:  # 1: uncompressed
            needed = offset + page_series.nbytes
            if needed > file_size:
                raise ConversionError(
                    f"{path}: truncated TIFF: pixel data needs {needed} bytes, file has {file_size}"
                )
            swapped = dtype.newbyteorder(">" if self._tif.byteorder == ">" else "<")
            self._mm = ContiguousArrayFile(Path(path), offset, shape, swapped)
        else:
            self._pages = page_series.pages
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
