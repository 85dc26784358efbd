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
        vs = self._mrc.voxel_size  # Å, fields x y z
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
        super().__init__(
            path=Path(path),
            shape=tuple(int(n) for n in data.shape),  # type: ignore[arg-type]
            dtype=data.dtype.newbyteorder("="),
            voxel_size_nm=voxel,
            voxel_size_origin="MRC header voxel_size (Å)" if voxel else "",
            format="mrc",
            header=header,
        )
        offset = 1024 + int(h.nsymbt)
        self._file = ContiguousArrayFile(Path(path), offset, self.shape, data.dtype)
        self._mrc.close()

    def read(self, region: Region) -> np.ndarray:
        return self._file.read(region)

    def read_into(self, region: Region, out: np.ndarray) -> np.ndarray:
        return self._file.read_into(region, out)

    def close(self) -> None:
        self._file.close()
