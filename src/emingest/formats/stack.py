"""A folder or glob of 2-D images, stacked along z in natural sort order (slice_2 < slice_10)."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import numpy as np
from natsort import natsorted

from emingest.errors import ConversionError, UnsupportedFormatError
from emingest.formats.base import FileVolume, check_region
from emingest.regions import Region

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".jp2")


def stack_members(spec: str | Path) -> list[Path]:
    """The image files a folder or glob names, in natural order."""
    p = Path(spec)
    if p.is_dir():
        files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [Path(f) for f in glob.glob(str(spec)) if Path(f).is_file()]
    return [Path(f) for f in natsorted(files, key=lambda f: f.name)]


def read_plane(path: Path) -> np.ndarray:
    """One 2-D image; TIFF through tifffile, the rest through imagecodecs."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            from emingest.formats.tiff import data_series

            with tifffile.TiffFile(path) as tif:
                series = data_series(tif)
                if len(series) != 1:
                    # tifffile.imread would return the first series alone
                    raise UnsupportedFormatError(
                        f"{path}: {len(series)} image series in one slice file; a slice must "
                        "be a single 2-D image"
                    )
                a = tif.series[series[0]].asarray()
        else:
            import imagecodecs

            a = imagecodecs.imread(str(path))
    except UnsupportedFormatError:
        raise
    except Exception as err:
        raise ConversionError(f"{path}: cannot decode image: {err}") from err
    a = np.squeeze(a)
    if a.ndim != 2:
        raise UnsupportedFormatError(f"{path}: expected a 2-D greyscale image, got {a.shape}")
    return a


class ImageStackVolume(FileVolume):
    def __init__(self, spec: str | Path, members: list[Path] | None = None) -> None:
        files = members if members is not None else stack_members(spec)
        if not files:
            raise UnsupportedFormatError(f"{spec}: no images found")
        first = read_plane(files[0])
        voxel = None
        origin = ""
        header: dict[str, Any] = {"members": [f.name for f in files]}
        if files[0].suffix.lower() in (".tif", ".tiff"):
            from emingest.formats.tiff import TiffVolume

            tv = TiffVolume(files[0])
            if tv.voxel_size_nm is not None:
                # A slice knows its pixel size; the z spacing comes from the user or a source.
                voxel = tv.voxel_size_nm
                origin = f"first slice's TIFF header ({tv.voxel_size_origin})"
            tv.close()
        super().__init__(
            path=Path(spec),
            shape=(len(files), *first.shape),
            dtype=first.dtype.newbyteorder("="),
            voxel_size_nm=voxel,
            voxel_size_origin=origin,
            format="image-stack",
            header=header,
        )
        self.members = files

    def read(self, region: Region) -> np.ndarray:
        check_region(region, self.shape)
        zs, ys, xs = region
        out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), self.dtype)
        for i, z in enumerate(range(zs.start, zs.stop)):
            plane = read_plane(self.members[z])
            if plane.shape != self.shape[1:] or plane.dtype != self.dtype:
                raise ConversionError(
                    f"{self.members[z]}: shape {plane.shape} {plane.dtype} differs from the "
                    f"first slice's {self.shape[1:]} {self.dtype}"
                )
            out[i] = plane[ys, xs]
        return out
