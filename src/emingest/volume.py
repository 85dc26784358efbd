"""Open an ingested volume by its catalog id and read it: the local half of the Python SDK.

>>> import emingest
>>> vol = emingest.open("epfl/ca1-hippocampus/volumedata")       # doctest: +SKIP
>>> plane = vol.read((10, slice(0, 512), slice(0, 512)), level=0)  # doctest: +SKIP

The server (``emingest.serve``) reads through the same class, so what the REST API answers and
what a local reader sees are the same bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emingest.errors import EntryNotFoundError, MissingExtraError, RequestError
from emingest.records import VolumeRecord

if TYPE_CHECKING:
    from emingest.catalog import CatalogRow
    from emingest.config import Settings
    from emingest.storage import DataRoot, Location

RegionLike = Sequence[int | slice | None] | None
"""Up to three items, z y x: an int picks one index (the axis is kept, length 1), a slice a
range, None or a missing item the whole axis."""


@dataclass(frozen=True)
class LevelInfo:
    """One pyramid level: its array path inside the store, shape and voxel size (z y x, nm)."""

    index: int
    path: str
    shape: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float] | None
    translation_nm: tuple[float, float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "shape": list(self.shape),
            "voxel_size_nm": list(self.voxel_size_nm) if self.voxel_size_nm else None,
            "translation_nm": list(self.translation_nm) if self.translation_nm else None,
        }


def levels_of(record: VolumeRecord | dict[str, Any]) -> list[LevelInfo]:
    """The pyramid levels a complete record lists (empty for stubs and errors)."""
    scales = record.scales if isinstance(record, VolumeRecord) else record.get("scales")
    out = []
    for i, s in enumerate(scales or []):
        d = s.model_dump() if hasattr(s, "model_dump") else dict(s)
        vox = d.get("voxel_size_nm")
        tr = d.get("translation_nm")
        out.append(
            LevelInfo(
                index=i,
                path=d["path"],
                shape=tuple(int(v) for v in d["shape"]),  # type: ignore[arg-type]
                voxel_size_nm=tuple(float(v) for v in vox) if vox else None,  # type: ignore[arg-type]
                translation_nm=tuple(float(v) for v in tr) if tr else None,  # type: ignore[arg-type]
            )
        )
    return out


def normalize_region(region: RegionLike, shape: Sequence[int]) -> tuple[slice, slice, slice]:
    """Three bounded slices inside ``shape`` (z y x), or a :class:`RequestError` saying which
    axis is wrong. Steps are not supported (ask a coarser level instead)."""
    items = list(region) if region is not None else []
    if len(items) > 3:
        raise RequestError(f"a region has at most three items (z, y, x), got {len(items)}")
    items += [None] * (3 - len(items))
    out = []
    for axis, item, size in zip("zyx", items, shape, strict=True):
        if item is None:
            out.append(slice(0, size))
        elif isinstance(item, int | np.integer):
            i = int(item)
            if not 0 <= i < size:
                raise RequestError(f"{axis}={i} is outside 0..{size - 1}")
            out.append(slice(i, i + 1))
        elif isinstance(item, slice):
            if item.step not in (None, 1):
                raise RequestError(f"{axis}: steps are not supported; read a coarser level")
            start, stop, _ = item.indices(size)
            if item.start is not None and not 0 <= item.start < size:
                raise RequestError(f"{axis} starts at {item.start}, outside 0..{size - 1}")
            if stop <= start:
                raise RequestError(f"{axis}: empty range {start}:{stop} (axis size {size})")
            out.append(slice(start, stop))
        else:
            raise RequestError(f"{axis}: expected an int, a slice or None, got {item!r}")
    return out[0], out[1], out[2]


def record_location(
    record_path: str, settings: Settings | None = None, *, data_root: DataRoot | None = None
) -> Location:
    """Where a record's sidecar is: a file on this machine, or an object of a bucket.

    An ``s3://`` URL below the S3 data root (``data_root``, else the settings') is read through
    that root (its endpoint and credentials); any other ``s3://`` URL through the settings'
    S3 options (``storage.s3_endpoint_url``, ``s3_region``, ``s3_anonymous``; AWS defaults
    without settings)."""
    from emingest.storage import S3Config, S3Root, as_location, is_s3_url, parse_s3_url

    if not is_s3_url(record_path):
        return as_location(record_path)
    config = S3Config()
    root = data_root
    if root is None and settings is not None:
        root = settings.storage.root()
    if isinstance(root, S3Root) and record_path.startswith(root.url + "/"):
        return root.location(record_path[len(root.url) + 1 :])
    if isinstance(root, S3Root):
        config = root.config
    elif settings is not None:
        config = settings.storage.s3_config()
    bucket, key = parse_s3_url(record_path)
    return S3Root(f"s3://{bucket}", config).location(key)


def store_location(
    row: CatalogRow,
    settings: Settings | None = None,
    *,
    data_root: DataRoot | None = None,
    probe: bool = True,
) -> Location:
    """Where a record's OME-Zarr store is: beside its sidecar (a labels image inside its
    image's ``labels/`` group), else what the record's ``local_paths.volume`` says (relative
    to the data root the sidecar sits in). A folder or a bucket alike; ``probe=False`` takes
    the store beside the sidecar without asking whether it is there."""
    from emingest.layout import safe_component
    from emingest.storage import is_s3_url

    record = record_location(row.record_path, settings, data_root=data_root)
    folder = record.parent
    labels_of = (row.record.get("additional_metadata") or {}).get("labels_of")
    if isinstance(labels_of, str) and "/" in labels_of:
        image = labels_of.rsplit("/", 1)[1]
        derived = folder / f"{safe_component(image)}.ome.zarr" / "labels" / safe_component(row.name)
    else:
        derived = folder / f"{safe_component(row.name)}.ome.zarr"
    if not probe or derived.exists():
        return derived
    volume = (row.record.get("local_paths") or {}).get("volume")
    if not isinstance(volume, str) or not volume:
        return derived
    # <data_root>/<source>/<source_id>/<name>.json: the data root is two folders up
    try:
        if is_s3_url(volume) or Path(volume).is_absolute():
            recorded = record_location(volume, settings, data_root=data_root)
        else:
            recorded = folder.parent.parent / volume
    except ValueError:  # a '..' in a hand-edited record
        return derived
    return recorded if recorded.exists() else derived


def store_path(row: CatalogRow) -> Path:
    """:func:`store_location` of a record on this machine, as a path."""
    return store_location(row).path


def _optional(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{module} is not installed; install it with: pip install 'emingest[{extra}]'"
        ) from err


class VolumeBase:
    """What a local :class:`Volume` and a remote one (``emingest.client``) share: the record,
    the levels, region checks, dask and xarray views. Subclasses read boxes."""

    id: str
    record: VolumeRecord
    levels: list[LevelInfo]

    def __repr__(self) -> str:
        shape = self.levels[0].shape if self.levels else None
        return f"{type(self).__name__}({self.id!r}, shape={shape}, dtype={self.record.dtype!r})"

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.record.dtype or "uint8")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.level(0).shape

    @property
    def voxel_size_nm(self) -> tuple[float, float, float] | None:
        return self.level(0).voxel_size_nm

    def level(self, level: int) -> LevelInfo:
        if not self.levels:
            raise RequestError(f"{self.id} has no data yet (status {self.record.status!r})")
        if not 0 <= level < len(self.levels):
            raise RequestError(f"{self.id}: level {level} outside 0..{len(self.levels) - 1}")
        return self.levels[level]

    def region(self, region: RegionLike, level: int = 0) -> tuple[slice, slice, slice]:
        return normalize_region(region, self.level(level).shape)

    def read(self, region: RegionLike = None, level: int = 0) -> np.ndarray:
        """The voxels of ``region`` (z y x) at ``level``, always three-dimensional."""
        return self._read_box(self.region(region, level), level)

    def _read_box(self, box: tuple[slice, slice, slice], level: int) -> np.ndarray:
        raise NotImplementedError

    def to_dask(self, level: int = 0) -> Any:
        """A dask array of one level, chunked like the store (needs the ``sdk`` extra)."""
        da = _optional("dask.array", "sdk")
        info = self.level(level)
        chunks = tuple(
            min(c, n)
            for c, n in zip(self.record.chunk_shape or info.shape, info.shape, strict=True)
        )
        return da.from_array(_LevelArray(self, level), chunks=chunks, asarray=True, name=False)

    def to_xarray(self, level: int = 0) -> Any:
        """A dask-backed xarray DataArray with z, y, x coordinates in nanometres (voxel
        centres; index coordinates when the record has no voxel size)."""
        xr = _optional("xarray", "sdk")
        info = self.level(level)
        vox = info.voxel_size_nm or (1.0, 1.0, 1.0)
        tr = info.translation_nm or (0.0, 0.0, 0.0)
        coords = {
            axis: np.arange(n) * v + t
            for axis, n, v, t in zip("zyx", info.shape, vox, tr, strict=True)
        }
        unit = "nm" if info.voxel_size_nm else "voxel"
        arr = xr.DataArray(self.to_dask(level), dims=("z", "y", "x"), coords=coords, name=self.id)
        for axis in "zyx":
            arr[axis].attrs["units"] = unit
        arr.attrs.update({"id": self.id, "level": level, "voxel_size_nm": list(vox)})
        return arr


class Volume(VolumeBase):
    """One ingested volume on this machine: its record, pyramid levels and voxels, read with
    tensorstore straight from the OME-Zarr store."""

    def __init__(
        self,
        row: CatalogRow,
        settings: Settings | None = None,
        *,
        context: Any = None,
        data_root: DataRoot | None = None,
    ) -> None:
        self.row = row
        self.context = context
        """A ``tensorstore.Context`` shared by several volumes (the server's chunk cache)."""
        self.id = row.id
        self.settings = settings
        self.record = VolumeRecord.model_validate(row.record)
        self.levels = levels_of(self.record)
        self.store: Location = store_location(row, settings, data_root=data_root)
        """The OME-Zarr store: a folder on this machine or a prefix of a bucket."""
        self._arrays: dict[int, Any] = {}
        self._lock: threading.Lock | None = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Open tensorstore handles do not cross processes: a DataLoader worker reopens them.
        state = dict(self.__dict__)
        state["_arrays"] = {}
        state["_lock"] = None
        state["context"] = None  # a cache pool is per process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def array(self, level: int = 0) -> Any:
        """The tensorstore array of one level (opened once, then reused)."""
        info = self.level(level)
        assert self._lock is not None
        with self._lock:
            arr = self._arrays.get(level)
            if arr is None:
                import tensorstore as ts

                where = self.store / info.path
                try:
                    arr = ts.open(
                        {"driver": "zarr3", "kvstore": where.kvstore()},
                        open=True,
                        read=True,
                        context=self.context,
                    ).result()
                except ValueError as err:
                    raise EntryNotFoundError(f"{self.id}: cannot open {where}: {err}") from err
                self._arrays[level] = arr
        return arr

    def _read_box(self, box: tuple[slice, slice, slice], level: int) -> np.ndarray:
        return np.asarray(self.array(level)[box].read().result())

    @property
    def labels(self) -> dict[str, Volume]:
        """Labels images of this volume (e.g. ground truth), by name."""
        from emingest.catalog import CatalogFilters, open_catalog

        if self.settings is None:
            return {}
        key = f"{self.record.source_id}/{self.record.name}"
        with open_catalog(self.settings) as cat:
            rows = cat.query(CatalogFilters(source=self.record.source))
        return {
            r.name: Volume(r, self.settings)
            for r in rows
            if (r.record.get("additional_metadata") or {}).get("labels_of") == key
        }

    def thumbnail(self, size: int = 256) -> np.ndarray:
        """A uint8 image of the middle z plane, longest side ``size``, contrast from the
        record's statistics."""
        from emingest.imaging import thumbnail_of

        return thumbnail_of(self, size)


class _LevelArray:
    """The minimal array protocol dask needs, reading one level of a volume."""

    def __init__(self, volume: VolumeBase, level: int) -> None:
        self.volume = volume
        self.level = level
        self.shape = volume.level(level).shape
        self.dtype = volume.dtype
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.volume.read(tuple(key), self.level)


def local_settings(
    settings: Settings | None = None, data_root: str | Path | None = None
) -> Settings:
    """``settings`` (default: defaults < TOML-less environment), with ``data_root`` if given."""
    from emingest.config import load_settings

    if settings is None:
        overrides = {"storage": {"data_root": str(data_root)}} if data_root is not None else {}
        return load_settings(overrides=overrides)
    if data_root is not None:
        # validated, so an s3:// URL stays a URL (model_copy would skip the validator)
        storage = type(settings.storage).model_validate(
            {**settings.storage.model_dump(), "data_root": str(data_root)}
        )
        return settings.model_copy(update={"storage": storage})
    return settings


def find_records(
    *, settings: Settings | None = None, data_root: str | Path | None = None, **filters: Any
) -> list[CatalogRow]:
    """Catalog rows matching ``CatalogFilters(**filters)`` (``emingest.catalog(...)``)."""
    from emingest.catalog import find_records as query

    return query(settings=settings, data_root=data_root, **filters)


def open_volume(
    record_id: str, *, settings: Settings | None = None, data_root: str | Path | None = None
) -> Volume:
    """The volume a catalog id names (``emingest.open(...)``); :class:`EntryNotFoundError`
    naming the ids of that source when there is none."""
    from emingest.catalog import open_catalog

    settings = local_settings(settings, data_root)
    with open_catalog(settings) as cat:
        row = cat.get(record_id)
        near = []
        if row is None:
            prefix = record_id.split("/", 1)[0] + "/"
            near = [r.id for r in cat.query() if r.id.startswith(prefix)][:10]
    if row is None:
        hint = f"; ids of that source: {', '.join(near)}" if near else ""
        raise EntryNotFoundError(
            f"no record {record_id!r} in the catalog under {settings.storage.data_root}{hint}"
        )
    return Volume(row, settings)
