"""An existing Zarr array (v2 or v3), or the first level of an OME-Zarr image group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

from emingest.errors import UnsupportedFormatError
from emingest.formats.base import FileVolume, check_region, native
from emingest.formats.units import nm_per
from emingest.regions import Region


def is_zarr(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup")
    )


def _ngff_level0(
    group: zarr.Group, path: Path
) -> tuple[str, tuple[float, float, float] | None, dict[str, Any]]:
    attrs: dict[str, Any] = dict(group.attrs)  # JSON: checked below as it is read
    ms: Any = (attrs.get("ome") or attrs).get("multiscales")
    if not ms:
        raise UnsupportedFormatError(
            f"{path}: Zarr group without OME-NGFF multiscales; name one of its arrays instead"
        )
    first = ms[0]
    axes = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", [])]
    units = [a.get("unit") if isinstance(a, dict) else None for a in first.get("axes", [])]
    ds = first["datasets"][0]
    scale = next(
        (t["scale"] for t in ds.get("coordinateTransformations", []) if t["type"] == "scale"),
        None,
    )
    voxel: tuple[float, ...] | None = None
    if scale is not None and axes[-3:] == ["z", "y", "x"]:
        factors = [f for f in (nm_per(u) for u in units[-3:]) if f is not None]
        if len(factors) == 3:
            voxel = tuple(float(s) * f for s, f in zip(scale[-3:], factors, strict=True))
    return ds["path"], voxel, first  # type: ignore[return-value]


class ZarrVolume(FileVolume):
    def __init__(self, path: Path) -> None:
        try:
            node = zarr.open(store=str(path), mode="r")
        except Exception as err:
            raise UnsupportedFormatError(f"{path}: not a readable Zarr store ({err})") from err
        voxel = None
        header: dict[str, Any] = {}
        if isinstance(node, zarr.Group):
            sub, voxel, header = _ngff_level0(node, Path(path))
            node = node[sub]
        arr: Any = node
        if arr.ndim == 2:
            shape = (1, *arr.shape)
        elif arr.ndim == 3:
            shape = tuple(arr.shape)
        else:
            raise UnsupportedFormatError(f"{path}: array has {arr.ndim} dimensions, need 2 or 3")
        super().__init__(
            path=Path(path),
            shape=shape,
            dtype=np.dtype(arr.dtype).newbyteorder("="),
            voxel_size_nm=voxel,
            voxel_size_origin="OME-NGFF scale" if voxel else "",
            format="zarr",
            header={"multiscales": header} if header else {},
        )
        self._arr = arr

    def read(self, region: Region) -> np.ndarray:
        check_region(region, self.shape)
        if self._arr.ndim == 2:
            return native(np.asarray(self._arr[region[1:]])[np.newaxis][region[0]])
        return native(np.asarray(self._arr[region]))
