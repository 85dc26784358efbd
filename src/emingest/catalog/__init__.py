"""The catalog: a queryable index over the record sidecars, and its reports.

The sidecar JSON files (``<data_root>/<source>/<source_id>/<name>.json``) are the source of
truth; the catalog is an index that can always be rebuilt from them (``emingest catalog sync``),
so losing or corrupting the database file never loses data. Callers use the :class:`Catalog`
protocol through :func:`open_catalog`: an embedded SQLite file by default, or a PostgreSQL
database (``catalog.url``, extra ``postgres``) when several machines write at once.

>>> from emingest.catalog import CatalogFilters, open_catalog
>>> with open_catalog(settings) as cat:                       # doctest: +SKIP
...     rows = cat.query(CatalogFilters(source="empiar", status="complete"))
"""

from __future__ import annotations

import json
import logging
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from emingest import storage
from emingest.errors import CatalogError, ConversionError, DataRootError, EmingestError
from emingest.layout import iter_record_locations, iter_sidecars
from emingest.records import STATUS_COMPLETE, STATUS_SAVING, VolumeRecord, read_record

if TYPE_CHECKING:
    from emingest.config import Settings

log = logging.getLogger(__name__)

DEFAULT_DB_NAME = "catalog.sqlite"
STATUS_CHOICES = ("complete", "error", "saving-data", "in-progress")
"""Values of :attr:`CatalogFilters.status`; ``in-progress`` is a synonym of ``saving-data``."""


# -- what the catalog holds -----------------------------------------------------------------


def record_id(record: VolumeRecord) -> str:
    """The catalog id of a record: ``<source>/<source_id>/<name>``."""
    return f"{record.source}/{record.source_id}/{record.name}"


def status_group(status: str | None) -> str:
    """``complete``, ``in-progress``, ``error`` or ``unknown``: what a status means for a user."""
    if status == STATUS_COMPLETE:
        return "complete"
    if status == STATUS_SAVING:
        return "in-progress"
    if isinstance(status, str) and status.startswith("error:"):
        return "error"
    return "unknown"


@dataclass(frozen=True)
class CatalogRow:
    """One indexed record: the columns you can filter on, plus the full record."""

    id: str
    source: str
    source_id: str
    name: str
    status: str
    dtype: str | None
    shape: tuple[int, int, int] | None
    voxel_size_nm: tuple[float, float, float] | None
    nbytes: int | None
    file_size_bytes: int | None
    sha256: str | None
    description: str
    record_path: str
    timestamp: str
    record: dict[str, Any] = field(repr=False, compare=True)

    @classmethod
    def from_record(cls, record: VolumeRecord, path: Path | str) -> CatalogRow:
        shape = record.volume_shape
        voxel = record.voxel_size_nm
        return cls(
            id=record_id(record),
            source=record.source,
            source_id=record.source_id,
            name=record.name,
            status=record.status,
            dtype=record.dtype,
            shape=tuple(shape) if shape and len(shape) == 3 else None,  # type: ignore[arg-type]
            voxel_size_nm=tuple(voxel) if voxel and len(voxel) == 3 else None,  # type: ignore[arg-type]
            nbytes=record.nbytes,
            file_size_bytes=record.file_size_bytes,
            sha256=record.sha256,
            description=record.description,
            record_path=str(path) if storage.is_s3_url(path) else str(Path(path).resolve()),
            timestamp=record.timestamp,
            record=json.loads(record.model_dump_json()),
        )

    def summary(self) -> dict[str, Any]:
        """The indexed columns as a flat JSON-able dict (what ``catalog list --json`` prints)."""
        out = asdict(self)
        del out["record"]
        out["shape"] = list(self.shape) if self.shape else None
        out["voxel_size_nm"] = list(self.voxel_size_nm) if self.voxel_size_nm else None
        return out


@dataclass(frozen=True)
class CatalogFilters:
    """What ``catalog list`` filters on; every field left as None matches everything.

    Voxel-size bounds (nm) apply to every axis; shape bounds are per axis, z y x. A bound on a
    column excludes records that do not have that column yet (stubs, errors).
    """

    source: str | None = None
    status: str | None = None
    dtype: str | None = None
    voxel_min_nm: float | None = None
    voxel_max_nm: float | None = None
    min_shape: tuple[int, int, int] | None = None
    max_shape: tuple[int, int, int] | None = None
    text: str | None = None
    """Case-insensitive substring of the description."""

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUS_CHOICES:
            raise CatalogError(
                f"unknown status filter {self.status!r}; use one of {', '.join(STATUS_CHOICES)}"
            )
        for name in ("min_shape", "max_shape"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise CatalogError(f"{name} needs three values, z y x; got {value!r}")

    def sql_where(self, placeholder: str, contains: str) -> tuple[str, list[Any]]:
        """``WHERE ...`` (or "") and its parameters over the index's columns, for every SQL
        backend: ``placeholder`` is the driver's ("?", "%s"), ``contains`` its expression
        for "the description contains the parameter" (SQLite's instr, PostgreSQL's strpos)."""
        p = placeholder
        where: list[str] = []
        params: list[Any] = []
        if self.source is not None:
            where.append(f"source = {p}")
            params.append(self.source)
        if self.status is not None:
            where.append(f"status_group = {p}")
            params.append(_STATUS_GROUP_OF_FILTER[self.status])
        if self.dtype is not None:
            where.append(f"dtype = {p}")
            params.append(self.dtype)
        for bound, op in ((self.voxel_min_nm, ">="), (self.voxel_max_nm, "<=")):
            if bound is not None:
                where.append(" AND ".join(f"voxel_{a} {op} {p}" for a in "zyx"))
                params += [float(bound)] * 3
        for shape, op in ((self.min_shape, ">="), (self.max_shape, "<=")):
            if shape is not None:
                where.append(" AND ".join(f"shape_{a} {op} {p}" for a in "zyx"))
                params += [int(n) for n in shape]
        if self.text:
            where.append(contains.format(p=p))
            params.append(self.text)
        clause = f"WHERE {' AND '.join(f'({w})' for w in where)}" if where else ""
        return clause, params


# the ``--status`` choices as the index's ``status_group`` column spells them
_STATUS_GROUP_OF_FILTER = {
    "complete": "complete",
    "error": "error",
    "saving-data": "in-progress",
    "in-progress": "in-progress",
}


@dataclass
class SyncResult:
    """What :meth:`Catalog.sync` did: records indexed, sidecars it could not index and why."""

    indexed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(sidecar path, reason) for each unreadable or invalid sidecar."""
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    """(id, sidecar path) for each sidecar whose id an earlier sidecar already had."""


# -- the interface ----------------------------------------------------------------------------


class RecordSource(Protocol):
    """Record sidecars somewhere other than a local folder (``catalog.s3_records.S3Records``);
    ``Catalog.sync`` accepts one where it takes a data root."""

    def read_rows(self) -> tuple[list[CatalogRow], SyncResult]:
        """Every record as a row, like :func:`read_sidecars`."""
        ...


DataRoot = Path | str | RecordSource | storage.DataRoot
"""What ``Catalog.sync`` reads records from: a data root (a folder, ``s3://bucket/prefix`` or
a :class:`emingest.storage.DataRoot`), or a :class:`RecordSource`."""


class Catalog(Protocol):
    """The index of records. Implementations raise :class:`CatalogError` on database failures."""

    def upsert(self, record: VolumeRecord, path: Path | str) -> None:
        """Add or replace the record whose sidecar is at ``path``."""
        ...

    def remove(self, id: str) -> bool:
        """Drop a record from the index; False when it was not there."""
        ...

    def query(self, filters: CatalogFilters | None = None) -> list[CatalogRow]:
        """Records matching ``filters``, ordered by id."""
        ...

    def get(self, id: str) -> CatalogRow | None:
        """The record with this id, or None when the index has none."""
        ...

    def sync(self, data_root: DataRoot) -> SyncResult:
        """Replace the whole index, atomically, with what the sidecars under ``data_root`` say."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Catalog: ...

    def __exit__(self, *exc: object) -> None: ...


# -- sidecars on disk -------------------------------------------------------------------------


def read_sidecars(data_root: DataRoot) -> tuple[list[CatalogRow], SyncResult]:
    """Read and validate every sidecar; rows ordered by id, the last of duplicates winning."""
    if not isinstance(data_root, Path | str | storage.DataRoot):
        return data_root.read_rows()
    root = storage.as_root(data_root)
    result = SyncResult()
    rows: dict[str, CatalogRow] = {}
    if isinstance(root, storage.LocalRoot):
        if not root.path.is_dir():
            return [], result
        locations = list(iter_record_locations(root))
        read = [_read_located(loc) for loc in locations]
    else:
        locations = list(iter_record_locations(root))
        # small objects, one GET each: many in flight (the client is per thread)
        with ThreadPoolExecutor(16, thread_name_prefix="records") as pool:
            read = list(pool.map(_read_located, locations))
    for loc, got in zip(locations, read, strict=True):
        path: Path | str = loc.path if loc.is_local else loc.url
        if isinstance(got, EmingestError):
            result.skipped.append((str(path), str(got)))
            continue
        if got is None:  # deleted since the listing
            continue
        record = got
        row = CatalogRow.from_record(record, path)
        if row.id in rows:
            result.duplicates.append((row.id, str(path)))
        rows[row.id] = row
    result.indexed = len(rows)
    return [rows[k] for k in sorted(rows)], result


def _read_located(location: storage.Location) -> VolumeRecord | EmingestError | None:
    try:
        return read_record(location)
    except ConversionError as err:
        if isinstance(err.__cause__, DataRootError):
            raise err.__cause__ from err  # a sync must not drop a record it could not fetch
        if isinstance(err.__cause__, FileNotFoundError):
            return None
        return err
    except EmingestError as err:
        return err


# -- opening ---------------------------------------------------------------------------------


def catalog_db_path(settings: Settings) -> Path:
    """``[catalog] db_path`` when set, else ``<data_root>/catalog.sqlite``."""
    section = getattr(settings, "catalog", None)
    configured = getattr(section, "db_path", None)
    if configured is not None:
        return Path(configured)
    return settings.storage.local_root / DEFAULT_DB_NAME


def is_postgres_url(location: object) -> bool:
    """Whether a catalog location is a PostgreSQL URL rather than a SQLite file path."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_catalog(
    settings_or_path: Settings | Path | str, *, data_root: DataRoot | None = None
) -> Catalog:
    """Open the catalog that ``settings`` name (``catalog.url``, else the SQLite file), the
    SQLite file at a path, or the PostgreSQL database at a ``postgresql://`` URL.

    With a data root (from the settings, or given), a missing, corrupt or outdated database is
    rebuilt from the sidecars on open, with a warning for the corrupt case.
    """
    from emingest.catalog.sqlite import SQLiteCatalog

    if is_postgres_url(settings_or_path):
        from emingest.catalog.postgres import PostgresCatalog

        return PostgresCatalog(str(settings_or_path), data_root=data_root)
    if isinstance(settings_or_path, Path | str):
        return SQLiteCatalog(Path(settings_or_path), data_root=data_root)
    root = data_root if data_root is not None else settings_or_path.storage.root()
    url = settings_or_path.catalog.url
    if url is not None:
        return open_catalog(url, data_root=root)
    return SQLiteCatalog(catalog_db_path(settings_or_path), data_root=root)


def index_record(
    settings: Settings, record_path: Path | str, record: VolumeRecord | None = None
) -> bool:
    """Index one sidecar after it was written; for the pipeline. Never raises.

    A catalog failure is logged as a warning and the run goes on: the sidecar is the truth and
    ``emingest catalog sync`` catches the index up. Returns whether the index was updated.
    """
    try:
        if record is None:
            record = read_record(Path(record_path))
        with open_catalog(settings) as catalog:
            catalog.upsert(record, record_path)
        return True
    except (EmingestError, OSError) as err:
        log.warning("%s: not indexed (run `emingest catalog sync`): %s", record_path, err)
    except Exception:  # a catalog bug must not fail an ingest
        log.exception("%s: not indexed (a bug? please report it)", record_path)
    return False


__all__ = [
    "STATUS_CHOICES",
    "Catalog",
    "CatalogFilters",
    "CatalogRow",
    "DataRoot",
    "RecordSource",
    "SyncResult",
    "catalog_db_path",
    "find_records",
    "index_record",
    "is_postgres_url",
    "iter_sidecars",
    "open_catalog",
    "read_sidecars",
    "record_id",
    "status_group",
]


class _CallableCatalogModule(types.ModuleType):
    """``emingest.catalog(**filters)`` is the SDK's query (issue 14), but ``emingest.catalog``
    is also this package, and importing a submodule rebinds the parent's attribute to it; so
    the package itself is made callable rather than shadowed."""

    def __call__(self, **filters: Any) -> list[CatalogRow]:
        return find_records(**filters)


def find_records(
    *, settings: Settings | None = None, data_root: str | Path | None = None, **filters: Any
) -> list[CatalogRow]:
    """Catalog rows matching ``CatalogFilters(**filters)`` (``emingest.catalog(...)``), in the
    catalog of ``settings`` (default: defaults < environment), under ``data_root`` if given."""
    from emingest.config import load_settings

    if settings is None:
        overrides = {"storage": {"data_root": str(data_root)}} if data_root is not None else {}
        settings = load_settings(overrides=overrides)
    elif data_root is not None:
        storage = type(settings.storage).model_validate(
            {**settings.storage.model_dump(), "data_root": str(data_root)}
        )
        settings = settings.model_copy(update={"storage": storage})
    with open_catalog(settings) as cat:
        return cat.query(CatalogFilters(**filters))


sys.modules[__name__].__class__ = _CallableCatalogModule
