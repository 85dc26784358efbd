"""The contract every archive implements: discover -> describe -> open -> read(region).

A source says *what* an archive means; it never moves bytes itself (that is ``transports``)
and never writes output (that is ``omezarr``). The pipeline cannot tell a file archive (which
downloads into a cache and reads locally) from a chunked archive (which reads regions remotely).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from emingest.config import Settings

Region = tuple[slice, slice, slice]
"""A box in z, y, x voxel coordinates, half-open, steps of 1."""


@dataclass(frozen=True)
class VolumeRef:
    """One volume a dataset id names; enough for ``describe`` and ``open`` to find it again."""

    source: str
    source_id: str
    name: str
    locator: str = ""
    """Source-specific address (a path, a URL, an array key)."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Hashable source-specific details (kept small)."""

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.extra).get(key, default)


@dataclass
class VolumeInfo:
    """What a source knows of a volume, in our conventions: z, y, x order and nanometres."""

    ref: VolumeRef
    shape: tuple[int, int, int]
    dtype: np.dtype[Any]
    voxel_size_nm: tuple[float, float, float] | None
    description: str = ""
    download_url: str = ""
    voxel_size_origin: str = ""
    """Where the voxel size came from (file header, archive API, documentation, user)."""
    additional_metadata: dict[str, Any] = field(default_factory=dict)
    raw_paths: list[Path] = field(default_factory=list)
    """Downloaded originals, for ``local_paths.raw`` when kept."""
    files: list[dict[str, Any]] = field(default_factory=list)
    """Files the volume was made from: ``{name, url, size_bytes, sha256}`` each."""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    """What the source looked like (sizes, mtimes, ETags, members: ``emingest.fingerprints``),
    so a changed input is ingested again instead of skipped; empty: cannot tell."""
    levels: list[Any] | None = None
    """The archive's own pyramid (``omezarr.metadata.Level`` each, level 0 first) when it has
    one: the pipeline then copies these levels with ``reader.read_level`` instead of
    recomputing them."""

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@runtime_checkable
class VolumeReader(Protocol):
    """Random access to one volume's voxels. Must be safe to call from several threads."""

    shape: tuple[int, int, int]
    dtype: np.dtype[Any]

    def read(self, region: Region) -> np.ndarray:
        """Voxels of ``region`` as a C-contiguous native-byte-order array of ``dtype``."""
        ...

    def close(self) -> None: ...


class PyramidReader(VolumeReader, Protocol):
    """A reader of a source that has its own pyramid (``VolumeInfo.levels``).

    ``digest_from_store = True`` tells the pipeline that reading again is expensive (a remote
    archive): the digest is then computed from the level 0 just written, not from the source.
    """

    digest_from_store: bool

    def read_level(self, level: int, region: Region) -> np.ndarray: ...


class Source(Protocol):
    """One archive. Constructed with the run's settings and its own validated section."""

    name: ClassVar[str]

    def discover(self, spec: Sequence[str], **options: Any) -> list[VolumeRef]:
        """The volumes that ``spec`` (ids, paths, dataset names) names. Raises
        :class:`~emingest.errors.EntryNotFoundError` for an id that does not exist."""
        ...

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        """Metadata of one volume, without reading voxels where the archive allows."""
        ...

    def open(self, ref: VolumeRef) -> VolumeReader:
        """A reader for the voxels (downloading into the cache first for file archives)."""
        ...


class SourceSettings(BaseModel):
    """Base of each source's own settings section (``sources.<name>`` in the TOML)."""

    model_config = ConfigDict(extra="forbid")


def source_settings(settings: Settings, name: str, model: type[SourceSettings]) -> SourceSettings:
    """Validate the ``sources.<name>`` section against the source's model, with a clear error."""
    from pydantic import ValidationError

    from emingest.errors import ConfigError

    section = settings.source_section(name)
    if "transport" in model.model_fields:
        # [transport] applies to every source; [sources.<name>.transport] overrides its keys
        shared = settings.transport.model_dump(exclude_unset=True)
        own = section.get("transport") or {}
        section["transport"] = {**shared, **(own if isinstance(own, dict) else {})}
    try:
        return model.model_validate(section)
    except ValidationError as err:
        raise ConfigError(f"invalid settings in [sources.{name}]:\n{err}") from err
