"""MRC / MRCS / REC / ST / ALI / MAP volumes.

mrcfile parses and validates the header (its memory map checks the data size); voxels are then
read by offset, like uncompressed TIFFs, so memory follows the region read, not the file.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np

from emingest.errors import ConversionError, UnsupportedFormatError
from emingest.formats.base import ContiguousArrayFile, FileVolume
from emingest.regions import Region

MRC_SUFFIXES = (".mrc", ".mrcs", ".rec", ".st", ".ali", ".map")


class MrcVolume(FileVolume):
    def __init__(self, path: Path) -> None:
        try:
            # permissive=False: a header that lies about the data size is an error, not a warning
            self._mrc = mrcfile.mmap(path, mode="r", permissive=False)
        except ValueError as err:
            raise ConversionError(f"{path}: invalid MRC file: {err}") from err
        except OSError as err:
            raise UnsupportedFormatError(f"{path}: cannot open as MRC: {err}") from err
        data = self._mrc.data
        if data is None:
            raise ConversionError(f"{path}: MRC file has no data block")
        if data.ndim == 2:
            data = data[np.newaxis]
        if data.ndim != 3:
            raise UnsupportedFormatError(f"{path}: MRC data has {data.ndim} dimensions, need 3")
        # MAPC/MAPR/MAPS: which physical axis (1 x, 2 y, 3 z) the columns, rows and sections
        # run along. Most files are 1 2 3 (stored z-y-x); EMDB maps may use any permutation.
        stored_axes = (
            int(self._mrc.header.maps),
            int(self._mrc.header.mapr),
            int(self._mrc.header.mapc),
        )
        if sorted(stored_axes) != [1, 2, 3]:
            stored_axes = (3, 2, 1)  # 0 or nonsense (old writers): the default order
        # output axis z, y, x -> the stored axis that holds it
        self._perm = tuple(stored_axes.index(axis) for axis in (3, 2, 1))
        vs = self._mrc.voxel_size  # Å of the physical x y z axes (cella / mx, my, mz)
        voxel = None
        if float(vs.x) > 0 and float(vs.y) > 0:
            z = float(vs.z) if float(vs.z) > 0 else float(vs.x)
            voxel = (z / 10.0, float(vs.y) / 10.0, float(vs.x) / 10.0)
        h = self._mrc.header
        header = {
            "nx": int(h.nx),
            "ny": int(h.ny),
            "nz": int(h.nz),
            "mode": int(h.mode),
            "voxel_size_angstrom": [float(vs.x), float(vs.y), float(vs.z)],
            "origin_angstrom": [float(h.origin.x), float(h.origin.y), float(h.origin.z)],
            "exttyp": h.exttyp.tobytes().decode("ascii", "replace").strip("\x00 "),
            "labels": [
                lab.tobytes().decode("ascii", "replace").strip("\x00 ")
                for lab in h.label[: int(h.nlabl)]
            ],
        }
        header["axis_order_crs"] = list(stored_axes[::-1])  # MAPC, MAPR, MAPS
        stored_shape = tuple(int(n) for n in data.shape)
        super().__init__(
            path=Path(path),
            shape=tuple(stored_shape[i] for i in self._perm),  # type: ignore[arg-type]
            dtype=data.dtype.newbyteorder("="),
            voxel_size_nm=voxel,
            voxel_size_origin="MRC header voxel_size (Å)" if voxel else "",
            format="mrc",
            header=header,
        )
        offset = 1024 + int(h.nsymbt)
        self._file = ContiguousArrayFile(
            Path(path),
            offset,
            stored_shape,  # type: ignore[arg-type]
            data.dtype,
        )
        self._mrc.close()

    @property
    def _permuted(self) -> bool:
        return self._perm != (0, 1, 2)

    def _stored_region(self, region: Region) -> Region:
        stored = [slice(0, 0)] * 3
        for out_axis, stored_axis in enumerate(self._perm):
            stored[stored_axis] = region[out_axis]
        return (stored[0], stored[1], stored[2])

    def read(self, region: Region) -> np.ndarray:
        if not self._permuted:
            return self._file.read(region)
        block = self._file.read(self._stored_region(region))
        return np.ascontiguousarray(block.transpose(self._perm))

    def read_into(self, region: Region, out: np.ndarray) -> np.ndarray:
        if not self._permuted:
            return self._file.read_into(region, out)
        out[...] = self.read(region)
        return out

    def close(self) -> None:
        self._file.close()
