"""The index's columns, the same for every SQL backend: their names, a row's values for them,
and a row read back from them. A backend adds only its SQL dialect (types, placeholders)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from emingest.catalog import CatalogRow, status_group

INDEX_COLUMNS = (
    "id",
    "source",
    "source_id",
    "name",
    "status",
    "status_group",
    "dtype",
    "shape_z",
    "shape_y",
    "shape_x",
    "voxel_z",
    "voxel_y",
    "voxel_x",
    "nbytes",
    "file_size_bytes",
    "sha256",
    "description",
    "record_path",
    "timestamp",
    "record_json",
)


def row_values(row: CatalogRow) -> tuple[Any, ...]:
    """The values of ``INDEX_COLUMNS`` for ``row``, in that order."""
    shape = row.shape or (None, None, None)
    voxel = row.voxel_size_nm or (None, None, None)
    return (
        row.id,
        row.source,
        row.source_id,
        row.name,
        row.status,
        status_group(row.status),
        row.dtype,
        *shape,
        *voxel,
        row.nbytes,
        row.file_size_bytes,
        row.sha256,
        row.description,
        row.record_path,
        row.timestamp,
        json.dumps(row.record, sort_keys=True),
    )


def row_from_columns(v: Mapping[str, Any]) -> CatalogRow:
    """A row from its columns by name (``record_json`` as text, or already parsed JSON)."""
    shape = (v["shape_z"], v["shape_y"], v["shape_x"])
    voxel = (v["voxel_z"], v["voxel_y"], v["voxel_x"])
    record = v["record_json"]
    return CatalogRow(
        id=v["id"],
        source=v["source"],
        source_id=v["source_id"],
        name=v["name"],
        status=v["status"],
        dtype=v["dtype"],
        shape=shape if None not in shape else None,
        voxel_size_nm=voxel if None not in voxel else None,
        nbytes=v["nbytes"],
        file_size_bytes=v["file_size_bytes"],
        sha256=v["sha256"],
        description=v["description"],
        record_path=v["record_path"],
        timestamp=v["timestamp"],
        record=json.loads(record) if isinstance(record, str) else record,
    )
