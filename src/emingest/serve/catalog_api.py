"""Catalog and voxels over HTTP: ``/api/records``, one record, its regions and thumbnail,
the report."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from emingest.catalog import CatalogFilters, CatalogRow, open_catalog
from emingest.config import Settings
from emingest.errors import (
    CatalogError,
    EmingestError,
    EntryNotFoundError,
    RequestError,
    RequestTooLargeError,
)
from emingest.imaging import contrast_window, encode_png, to_uint8
from emingest.records import VolumeRecord
from emingest.storage import DataRoot, LocalRoot
from emingest.volume import Volume

router = APIRouter(tags=["catalog and data"])

CACHE_SECONDS = 5.0
"""How long an opened volume is reused before its catalog row is looked up again."""


class VolumeCache:
    """Opened volumes by id, so region requests reuse tensorstore handles; a row older than
    :data:`CACHE_SECONDS` is looked up again (a job may have rewritten it)."""

    def __init__(self, settings: Settings) -> None:
        import tensorstore as ts

        self.settings = settings
        self.data_root = settings.storage.root()
        """The served data root: a record's store is served when it lies below it."""
        # One chunk cache for every volume, bounded by serve.chunk_cache_bytes: a viewer asks
        # for neighbouring planes and levels, which decode the same chunks again without it.
        self.context = ts.Context(
            {"cache_pool": {"total_bytes_limit": settings.serve.chunk_cache_bytes}}
        )
        self._items: dict[str, tuple[float, Volume]] = {}
        self._lock = threading.Lock()

    def get(self, record_id: str) -> Volume:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(record_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        with open_catalog(self.settings) as cat:
            row = cat.get(record_id)
        if row is None:
            raise EntryNotFoundError(f"no record {record_id!r} in the catalog")
        if hit is not None and hit[1].row.timestamp == row.timestamp:
            volume = hit[1]
        else:
            volume = Volume(row, self.settings, context=self.context, data_root=self.data_root)
        with self._lock:
            self._items[record_id] = (now, volume)
        return volume


def atomic_write_bytes(path: Path, body: bytes) -> None:
    """Temp file beside ``path``, then rename: a reader never sees half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _volumes(request: Request) -> VolumeCache:
    return request.app.state.volumes


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def record_urls(
    row: CatalogRow, settings: Settings, base: str, root: DataRoot | None = None
) -> dict[str, Any]:
    """Links of one record: its API, thumbnail, OME-Zarr store and a neuroglancer source."""
    root = root if root is not None else settings.storage.root()
    rid = quote(row.id)
    out: dict[str, Any] = {
        "url": f"/api/records/{rid}",
        "thumbnail_url": f"/api/records/{rid}/thumbnail.png" if row.shape else None,
        "page_url": f"/#/volume/{rid}",
        "data_url": None,
        "neuroglancer_source": None,
    }
    if row.shape:
        key = data_key_of(row, settings, root)
        if key is None:
            return out
        out["data_url"] = f"/data/{quote(key)}"
        out["neuroglancer_source"] = f"zarr3://{base.rstrip('/')}{out['data_url']}/"
    return out


def data_key_of(row: CatalogRow, settings: Settings, root: DataRoot) -> str | None:
    """The key of a record's store below the served data root (what ``/data/`` serves), or
    None when it lies elsewhere. On a bucket the store beside the sidecar is trusted without
    a listing per record (a page of records would cost a request each)."""
    from emingest.volume import store_location

    try:
        store = store_location(row, settings, data_root=root, probe=root.is_local)
    except (EmingestError, ValueError):
        return None
    if isinstance(root, LocalRoot):
        if not store.is_local:
            return None
        try:
            return store.path.resolve().relative_to(root.path.resolve()).as_posix()
        except ValueError:
            return None
    return store.key if store.root == root else None


def _shape(text: str | None, name: str) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        parts = tuple(int(p) for p in text.replace(" ", ",").split(",") if p)
    except ValueError as err:
        raise RequestError(f"{name}: expected three integers z,y,x, got {text!r}") from err
    if len(parts) != 3:
        raise RequestError(f"{name}: expected three integers z,y,x, got {text!r}")
    return parts


@router.get("/api/records", summary="Records matching filters (as `catalog list`), paged")
def list_records(
    request: Request,
    source: str | None = None,
    status: str | None = None,
    dtype: str | None = None,
    voxel_min: Annotated[float | None, Query(description="nm, every axis")] = None,
    voxel_max: Annotated[float | None, Query(description="nm, every axis")] = None,
    min_shape: Annotated[str | None, Query(description="z,y,x")] = None,
    max_shape: Annotated[str | None, Query(description="z,y,x")] = None,
    text: Annotated[str | None, Query(max_length=200, description="in the description")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 100,
    full: Annotated[bool, Query(description="include each full record")] = False,
) -> dict[str, Any]:
    settings = _settings(request)
    limit = min(limit, settings.serve.page_limit)
    try:
        filters = CatalogFilters(
            source=source,
            status=status,
            dtype=dtype,
            voxel_min_nm=voxel_min,
            voxel_max_nm=voxel_max,
            min_shape=_shape(min_shape, "min_shape"),
            max_shape=_shape(max_shape, "max_shape"),
            text=text,
        )
    except (CatalogError, ValueError) as err:  # CatalogFilters checks its own values
        raise RequestError(str(err)) from err
    with open_catalog(settings) as cat:
        rows = cat.query(filters)
    base = str(request.base_url)
    items = [
        {
            **row.summary(),
            **record_urls(row, settings, base, _volumes(request).data_root),
            **({"record": row.record} if full else {}),
        }
        for row in rows[offset : offset + limit]
    ]
    return {"total": len(rows), "offset": offset, "limit": limit, "items": items}


def _parse_axis(text: str | None, axis: str) -> int | slice | None:
    if text is None or text == "":
        return None
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return slice(int(a) if a else None, int(b) if b else None)
        return int(text)
    except ValueError as err:
        raise RequestError(f"{axis}: expected an index or start:stop, got {text!r}") from err


def parse_region(z: str | None, y: str | None, x: str | None) -> list[int | slice | None]:
    return [_parse_axis(z, "z"), _parse_axis(y, "y"), _parse_axis(x, "x")]


@router.get(
    "/api/records/{record_id:path}/region",
    summary="Voxels of a region: .npy, raw bytes (X-Shape, X-Dtype headers) or PNG of a plane",
    responses={413: {"description": "region over serve.max_region_bytes"}},
)
def read_region(
    request: Request,
    record_id: str,
    level: Annotated[int, Query(ge=0)] = 0,
    z: Annotated[str | None, Query(description="index or start:stop")] = None,
    y: Annotated[str | None, Query(description="index or start:stop")] = None,
    x: Annotated[str | None, Query(description="index or start:stop")] = None,
    format: Literal["npy", "raw", "png"] = "npy",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Response:
    volume = _volumes(request).get(record_id)
    box = volume.region(parse_region(z, y, x), level)
    shape = tuple(s.stop - s.start for s in box)
    nbytes = int(np.prod(shape)) * volume.dtype.itemsize
    limit = _settings(request).serve.max_region_bytes
    if nbytes > limit:
        raise RequestTooLargeError(
            f"region {shape} of {volume.dtype} is {nbytes} bytes, over the limit of {limit} "
            "(serve.max_region_bytes): ask a smaller box or a coarser level"
        )
    data = volume.read(box, level)
    if format == "png":
        singles = [i for i, n in enumerate(shape) if n == 1]
        if not singles:
            raise RequestError("format=png needs a plane: give one axis a single index (e.g. z=10)")
        plane = data.reshape([n for i, n in enumerate(shape) if i != singles[0]])
        if plane.ndim != 2:
            plane = plane.reshape(plane.shape[0], -1)
        window = contrast_window(volume.record)
        window = (vmin if vmin is not None else window[0], vmax if vmax is not None else window[1])
        return Response(encode_png(to_uint8(plane, window)), media_type="image/png")
    headers = {"X-Shape": ",".join(str(n) for n in shape), "X-Dtype": data.dtype.str}
    if format == "raw":
        return Response(
            np.ascontiguousarray(data).tobytes(),
            media_type="application/octet-stream",
            headers=headers,
        )
    buf = io.BytesIO()
    np.save(buf, data, allow_pickle=False)
    return Response(buf.getvalue(), media_type="application/x-npy", headers=headers)


@router.get(
    "/api/records/{record_id:path}/thumbnail.png", summary="Middle-plane thumbnail (cached)"
)
def thumbnail(request: Request, record_id: str) -> Response:
    settings = _settings(request)
    volume = _volumes(request).get(record_id)
    size = settings.serve.thumbnail_px
    # on this machine: beside the data in a folder, under storage.work_dir for a bucket
    cache_dir = settings.serve.cache_dir or settings.storage.local_root / ".cache" / "thumbnails"
    key = hashlib.sha256(
        f"{volume.id}|{volume.record.timestamp}|{volume.record.sha256}|{size}".encode()
    ).hexdigest()[:32]
    path = Path(cache_dir) / f"{key}.png"
    if path.is_file():
        body = path.read_bytes()
    else:
        body = encode_png(volume.thumbnail(size))
        with contextlib.suppress(OSError):  # a read-only cache only costs speed
            atomic_write_bytes(path, body)
    return Response(
        body, media_type="image/png", headers={"Cache-Control": "max-age=60", "X-Cache-Key": key}
    )


@router.get("/api/records/{record_id:path}", summary="One record, its levels, labels and links")
def get_record(request: Request, record_id: str) -> JSONResponse:
    settings = _settings(request)
    with open_catalog(settings) as cat:
        row = cat.get(record_id)
        if row is None:
            raise EntryNotFoundError(f"no record {record_id!r} in the catalog")
        siblings = cat.query(CatalogFilters(source=row.source))
    key = f"{row.source_id}/{row.name}"
    labels = [
        r.id
        for r in siblings
        if (r.record.get("additional_metadata") or {}).get("labels_of") == key
    ]
    from emingest.volume import levels_of

    window = contrast_window(VolumeRecord.model_validate(row.record)) if row.shape else None
    body = {
        **row.summary(),
        **record_urls(row, settings, str(request.base_url), _volumes(request).data_root),
        "levels": [lv.to_dict() for lv in levels_of(row.record)],
        "labels": labels,
        "contrast": list(window) if window else None,
        "record": row.record,
    }
    return JSONResponse(body)


@router.get("/api/report", summary="The metadata report (as `catalog report`)")
def report(request: Request) -> dict[str, Any]:
    from emingest.catalog.report import build_report

    return build_report(_volumes(request).data_root)
