"""Gatan DigitalMicrograph DM3 / DM4 images, parsed with rosettasciio and read by region.

rosettasciio (the HyperSpy reader) parses the tag tree; we keep the main image (never the
thumbnail: the one listed under the root ``Thumbnails`` group is dropped, and of what is left the
largest non-RGB image wins), its data offset and its calibration, then read regions straight
from the file with ``os.pread``: one row band at a time, so memory follows the region asked
for, never the file. Calibrated axes in µm (or nm, Å) become nanometres here; the SBF-SEM slice
thickness (``SBFSEM.Record.Slice thickness`` or ``Meta Data.Dimension info.2``), which GMS
keeps only in the vendor tags, is the z spacing. ::

    image = read_dm_header("F57-8_test1_3VBSED_slice_0000.dm3")
    image.shape, image.pixel_size_nm, image.slice_thickness_nm   # (5500, 5496) (8.0, 8.0) 50.0
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emingest.errors import ConversionError, UnsupportedFormatError
from emingest.formats.base import FileVolume, check_region
from emingest.formats.units import nm_per
from emingest.regions import Region

DM_SUFFIXES = (".dm3", ".dm4")
_RGB_TYPES = (8, 23)
_COMPLEX_TYPES = (3, 5, 13, 27, 28)


@dataclass(frozen=True)
class DmImage:
    """The main image of one DM3/DM4 file: where its pixels lie and what its tags say."""

    path: Path
    shape: tuple[int, ...]
    """numpy order: (y, x) for an image, (z, y, x) for a stack."""
    dtype: np.dtype[Any]
    """Of the bytes on disk (byte order included)."""
    offset: int
    dm_version: int
    pixel_size_nm: tuple[float, float] | None
    """(y, x) in nm from the image's calibration; None when uncalibrated (pixel units)."""
    z_scale_nm: float | None
    """A 3-D image's own z calibration, in nm."""
    slice_thickness_nm: float | None
    """The SBF-SEM section thickness from the vendor tags, in nm."""
    slice_thickness_origin: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    """The image's ``ImageTags``, JSON-safe."""

    @property
    def plane_shape(self) -> tuple[int, int]:
        return (int(self.shape[-2]), int(self.shape[-1]))

    @property
    def depth(self) -> int:
        return int(self.shape[0]) if len(self.shape) == 3 else 1

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def read(self, region: Region, fd: int | None = None) -> np.ndarray:
        """Voxels of ``region`` (z, y, x; a 2-D image has z = 1), native byte order."""
        shape3 = (self.depth, *self.plane_shape)
        check_region(region, shape3)
        zs, ys, xs = region
        own = fd is None
        if fd is None:
            try:
                fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            except OSError as err:
                raise ConversionError(f"{self.path}: cannot open DM file: {err}") from err
        try:
            ny, nx = self.plane_shape
            row = nx * self.dtype.itemsize
            out = np.empty(
                (zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start),
                self.dtype.newbyteorder("="),
            )
            nrows = ys.stop - ys.start
            for i, z in enumerate(range(zs.start, zs.stop)):
                start = self.offset + (z * ny + ys.start) * row
                want = nrows * row
                buf = os.pread(fd, want, start)
                if len(buf) != want:
                    raise ConversionError(
                        f"{self.path}: truncated DM file: plane {z} rows {ys.start}:{ys.stop} "
                        f"need bytes {start}..{start + want}, got {len(buf)}"
                    )
                band = np.frombuffer(buf, self.dtype).reshape(nrows, nx)
                out[i] = band[:, xs]
            return out
        finally:
            if own:
                os.close(fd)


def read_dm_header(path: str | Path) -> DmImage:
    """Parse a DM3/DM4 file's tags (not its pixels) and describe its main image.

    Raises :class:`ConversionError` naming the file for a corrupt or truncated file and
    :class:`UnsupportedFormatError` for images we cannot hold (RGB, complex, 4-D).
    """
    from rsciio.digitalmicrograph._api import DigitalMicrographReader, ImageObject

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            dm = DigitalMicrographReader(fh)
            dm.parse_file()
            dicts = dm.get_image_dictionaries() or []
            images = [ImageObject(d, fh) for d in dicts]
            candidates = []
            for im in images:
                data = im.imdict.ImageData
                dtype_code = int(data.DataType)
                if dtype_code in _RGB_TYPES or isinstance(data.Data, np.ndarray):
                    continue  # thumbnails that are not listed as such, or inline tiny arrays
                candidates.append((int(np.prod(im.shape)), im))
            if not candidates:
                raise ConversionError(f"{path}: no image besides thumbnails in the DM file")
            _, main = max(candidates, key=lambda c: c[0])
            imdict = main.imdict.to_dict()
            shape = tuple(int(n) for n in main.shape)
            code = int(imdict["ImageData"]["DataType"])
            if code in _COMPLEX_TYPES:
                raise UnsupportedFormatError(f"{path}: complex DM images are not supported")
            dtype = np.dtype(main.dtype).newbyteorder(
                "<" if imdict["ImageData"]["Data"].get("endian", "little") == "little" else ">"
            )
            version = int(dm.dm_version)
    except (ConversionError, UnsupportedFormatError):
        raise
    except NotImplementedError as err:
        raise UnsupportedFormatError(f"{path}: unsupported DM file: {err}") from err
    except Exception as err:  # rosettasciio raises whatever struct/Box/KeyError met first
        raise ConversionError(
            f"{path}: corrupt or unreadable DM file ({type(err).__name__}: {err}); "
            "delete it from the cache to download it again"
        ) from err
    if len(shape) not in (2, 3):
        raise UnsupportedFormatError(f"{path}: DM image has shape {shape}; need 2-D or 3-D")
    data_info = imdict["ImageData"]["Data"]
    offset = int(data_info["offset"])
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + nbytes > size:
        raise ConversionError(
            f"{path}: truncated DM file: the image needs bytes {offset}..{offset + nbytes}, "
            f"the file has {size}"
        )
    calib = imdict["ImageData"].get("Calibrations", {}).get("Dimension", {}) or {}
    scales = _axis_scales_nm(calib)
    pixel = (scales[1], scales[0]) if scales[0] and scales[1] else None
    tags = imdict.get("ImageTags", {}) or {}
    thickness, origin = slice_thickness_nm(tags)
    return DmImage(
        path=path,
        shape=shape,
        dtype=dtype,
        offset=offset,
        dm_version=version,
        pixel_size_nm=pixel,
        z_scale_nm=scales[2] if len(shape) == 3 else None,
        slice_thickness_nm=thickness,
        slice_thickness_origin=origin,
        calibration=json_safe(calib),
        tags=json_safe(tags),
    )


def _axis_scales_nm(calib: dict[str, Any]) -> list[float | None]:
    """nm per pixel for DM axes 0 (x), 1 (y), 2 (z); None where uncalibrated."""
    out: list[float | None] = []
    for i in range(3):
        group = calib.get(f"TagGroup{i}") or {}
        units = group.get("Units")
        factor = nm_per(units) if isinstance(units, str) else None
        scale = group.get("Scale")
        if factor is not None and isinstance(scale, int | float) and scale > 0:
            out.append(float(scale) * factor)
        else:
            out.append(None)
    return out


def slice_thickness_nm(tags: dict[str, Any]) -> tuple[float | None, str]:
    """The section thickness an SBF-SEM (3View) slice carries in its vendor tags, in nm."""
    record = ((tags.get("SBFSEM") or {}).get("Record")) or {}
    value = record.get("Slice thickness")
    if isinstance(value, int | float) and value > 0:  # GMS writes it in nm
        return float(value), "DM3 tag SBFSEM.Record.Slice thickness (nm)"
    dim = (((tags.get("Meta Data") or {}).get("Dimension info")) or {}).get("TagGroup2") or {}
    scale, units = dim.get("Scale"), dim.get("Units")
    factor = nm_per(units) if isinstance(units, str) else None
    if isinstance(scale, int | float) and scale > 0 and factor is not None:
        return float(scale) * factor, f"DM3 tag Meta Data.Dimension info.2.Scale ({units})"
    return None, ""


def json_safe(value: Any) -> Any:
    """Tags as JSON can hold them: tuples to lists, numpy to Python, bytes to hex."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and value != value:
        return None
    return value


class DmVolume(FileVolume):
    """One DM3/DM4 file as a (z, y, x) volume; a 2-D image is one plane deep."""

    def __init__(self, path: str | Path, z_spacing_nm: float | None = None) -> None:
        image = read_dm_header(path)
        z = image.z_scale_nm or image.slice_thickness_nm or z_spacing_nm
        voxel = None
        origin = ""
        if image.pixel_size_nm is not None:
            py, px = image.pixel_size_nm
            voxel = (z or px, py, px)
            origin = "DM calibration (y, x)" + (
                f"; z from {image.slice_thickness_origin}"
                if not image.z_scale_nm and image.slice_thickness_nm
                else ""
            )
        super().__init__(
            path=Path(path),
            shape=(image.depth, *image.plane_shape),
            dtype=image.dtype.newbyteorder("="),
            voxel_size_nm=voxel,
            voxel_size_origin=origin,
            format=f"dm{image.dm_version}",
            header={"calibration": image.calibration, "image_tags": image.tags},
        )
        self.image = image

    def read(self, region: Region) -> np.ndarray:
        return self.image.read(region)


__all__ = [
    "DM_SUFFIXES",
    "DmImage",
    "DmVolume",
    "json_safe",
    "read_dm_header",
    "slice_thickness_nm",
]
