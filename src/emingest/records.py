"""The per-volume metadata record and its two-phase sidecar JSON file.

Phase 1 (before any voxel is written): a stub with ``status: "saving-data"`` and everything the
source said. Phase 2 (after the data is complete): the same file enriched with shape, scales,
digest and statistics and ``status: "complete"``. A failure turns the status into
``"error: <message>"``. Every write is atomic (temp file + rename), so a reader never sees half a
record. The committed JSON Schema (``schemas/record.schema.json``) is generated from this model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emingest._version import __version__
from emingest.atomic import atomic_write_text
from emingest.errors import ConversionError
from emingest.statistics import VoxelStatistics
from emingest.storage import DataRoot, Location, as_location, is_s3_url

RECORD_SCHEMA_VERSION = "1"
STATUS_SAVING = "saving-data"
STATUS_COMPLETE = "complete"
STATUS_PATTERN = r"^(saving-data|complete|error: .+)$"


class LocalPaths(BaseModel):
    """Where the volume's files are, relative to the data root (so a data root that is moved
    or mounted elsewhere stays valid); a file outside the data root (a cache set elsewhere)
    is named by its absolute path. Resolve with :func:`resolve_in_root`."""

    volume: str = Field(description="The OME-Zarr image, relative to the data root")
    metadata: str = Field(description="This record's sidecar file, relative to the data root")
    raw: list[str] | None = Field(
        None, description="Downloaded originals, when kept (relative to the data root)"
    )

    @classmethod
    def of_volume(
        cls, store: Location, record: Location, raw: list[Path] | None = None
    ) -> LocalPaths:
        """The paths of a volume written below a data root: keys relative to it (a folder or
        an S3 prefix alike); downloaded originals, always on this machine, relative to a
        local data root or absolute."""
        local = store.root.local_path
        return cls(
            volume=store.key,
            metadata=record.key,
            raw=[root_relative(p, local) if local else str(Path(p).absolute()) for p in raw]
            if raw
            else None,
        )


def root_relative(path: Path | str, data_root: Path | str) -> str:
    """``path`` relative to ``data_root`` when inside it, else absolute (POSIX separators)."""
    absolute = Path(path).absolute()
    root = Path(data_root).absolute()
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        try:
            return absolute.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return str(absolute)


def resolve_in_root(value: str, data_root: Path | str) -> Path:
    """A path of ``local_paths`` as a path on this machine: relative ones are below
    ``data_root`` (records written before paths became relative hold absolute ones)."""
    p = Path(value)
    return p if p.is_absolute() else Path(data_root) / p


def locate_in_root(value: str, data_root: DataRoot) -> Location:
    """A path of ``local_paths`` as a :class:`Location`: relative ones are below the data root
    (a folder or an S3 prefix); absolute paths and ``s3://`` URLs stand for themselves."""
    if is_s3_url(value) or Path(value).is_absolute():
        return as_location(value)
    return data_root.location(value)


class ScaleLevel(BaseModel):
    path: str
    shape: list[int] = Field(description="z, y, x")
    voxel_size_nm: list[float] | None = Field(description="z, y, x in nanometres")
    translation_nm: list[float] | None = None


class FileDigest(BaseModel):
    """One file a volume was made from (download or local member)."""

    name: str
    url: str | None = None
    size_bytes: int
    sha256: str | None = None


class VolumeRecord(BaseModel):
    """Normalized metadata of one ingested volume, the same for every archive."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = RECORD_SCHEMA_VERSION
    status: str = Field(pattern=STATUS_PATTERN)
    source: str
    source_id: str
    name: str
    description: str = ""
    download_url: str = ""
    local_paths: LocalPaths
    timestamp: str = Field(description="ISO 8601 UTC time of the last status change")
    voxel_size_nm: list[float] | None = Field(
        description="z, y, x in nanometres; null when no source gave one"
    )
    voxel_size_origin: str = ""
    additional_metadata: dict[str, Any] = Field(
        default_factory=dict, description="Everything the source said, kept whole"
    )
    files: list[FileDigest] = Field(default_factory=list)
    source_fingerprint: dict[str, Any] | None = Field(
        None,
        description="What the source looked like when ingested (sizes, modification times, "
        "ETags, members); a re-run whose source differs ingests again",
    )
    emingest_version: str = __version__
    # -- phase 2 ---------------------------------------------------------------------------
    volume_shape: list[int] | None = None
    dtype: str | None = None
    chunk_shape: list[int] | None = None
    shard_shape: list[int] | None = None
    scales: list[ScaleLevel] | None = None
    sha256: str | None = Field(None, description="sha256 of level 0's bytes, C order, native")
    nbytes: int | None = Field(None, description="Uncompressed size of level 0")
    file_size_bytes: int | None = Field(None, description="Bytes on disk of the whole store")
    statistics: VoxelStatistics | None = None
    ingest_seconds: float | None = None

    @property
    def is_complete(self) -> bool:
        return self.status == STATUS_COMPLETE


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_status(message: str) -> str:
    first_line = " ".join(str(message).split()) or "unknown error"
    return f"error: {first_line}"


def write_record(path: Path | Location, record: VolumeRecord) -> None:
    """Write the sidecar whole (temp file + rename on a disk, one PUT on S3)."""
    text = record.model_dump_json(indent=2) + "\n"
    if isinstance(path, Location):
        path.write_text(text)
    else:
        atomic_write_text(path, text)


def read_record(path: Path | Location) -> VolumeRecord:
    try:
        if isinstance(path, Location):
            text = path.read_text()
        else:
            text = Path(path).read_text(encoding="utf-8")
        return VolumeRecord.model_validate_json(text)
    except (OSError, ValidationError, ValueError) as err:
        raise ConversionError(f"{path}: unreadable metadata record: {err}") from err


def record_json_schema() -> dict[str, Any]:
    schema = VolumeRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://emingest.dev/schemas/record.schema.json"
    return schema


def record_json_schema_text() -> str:
    return json.dumps(record_json_schema(), indent=2, sort_keys=True) + "\n"
