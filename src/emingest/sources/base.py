"""The contract every archive implements: discover -> describe -> open -> read(region).

This module states the whole contract: :class:`Source` (required: ``name``, ``discover``,
``describe``, ``open``; optional with defaults: closing, labels, the preflight, default
datasets, the settings and options models, the command line's description),
:class:`VolumeReader` (required: ``read``; optional: ``read_into`` a buffer,
``digest_from_store``, ``close``) and :class:`PyramidReader`. ``emingest.testing.contract``
holds the tests every source passes.

A source says *what* an archive means; it never moves bytes itself (that is ``transports``)
and never writes output (that is ``omezarr``). The pipeline cannot tell a file archive (which
downloads into a cache and reads locally) from a chunked archive (which reads regions remotely).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from emingest.config import DatasetSettings, Settings
from emingest.readers import PyramidReader, VolumeReader
from emingest.regions import Region


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


class SourceSettings(BaseModel):
    """Base of each source's own settings section (``sources.<name>`` in the TOML)."""

    model_config = ConfigDict(extra="forbid")


class SourceOptions(BaseModel):
    """Base of a source's discover options: what ``emingest ingest <source>`` offers as flags
    and ``[[datasets]] options`` accepts. Each field becomes ``--field-name`` (underscores as
    dashes) with the field's description as help; ``json_schema_extra={"flag": "--x"}`` names
    the flag otherwise. ``None`` means "not given"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass
class Preflight:
    """What reaching an archive once said: ``ok`` when anything answered (any HTTP status)."""

    source: str
    url: str
    ok: bool
    detail: str
    seconds: float


def probe_http(source: str, url: str, *, timeout_s: float) -> Preflight:
    """Reach ``url`` once with a short timeout; never raises. FTP URLs are not probed."""
    import requests

    t0 = time.monotonic()
    if url.startswith("ftp://"):
        return Preflight(source, url, True, "not probed (FTP)", 0.0)
    try:
        resp = requests.get(url, timeout=timeout_s, stream=True)
        resp.close()
        return Preflight(source, url, True, f"HTTP {resp.status_code}", time.monotonic() - t0)
    except requests.RequestException as err:
        inner = err.args[0] if err.args else ""
        detail = f"{type(err).__name__}: {getattr(inner, 'reason', inner)}"
        return Preflight(source, url, False, detail, time.monotonic() - t0)


class Source(Protocol):
    """One archive: the whole contract. Built-ins and plug-ins subclass it explicitly and so
    inherit the defaults of the optional parts; only ``name``, ``discover``, ``describe`` and
    ``open`` are required. Constructed with the run's settings: ``Source(settings)``.
    """

    name: ClassVar[str]
    """Registry key, command name (``emingest ingest <name>``) and first folder of outputs."""

    description: ClassVar[str] = ""
    """One line for the command line's help."""

    ids_help: ClassVar[str] = "Ids of what to ingest"
    """Help of the command's IDS argument (what an id of this archive looks like)."""

    settings_model: ClassVar[type[SourceSettings]] = SourceSettings
    """The ``[sources.<name>]`` section's model (endpoints, timeouts)."""

    settings_flags: ClassVar[tuple[str, ...]] = ()
    """Keys of ``settings_model`` that the command also offers as flags (``--api-url``)."""

    options_model: ClassVar[type[SourceOptions]] = SourceOptions
    """Discover options: the command's own flags and ``[[datasets]] options``."""

    replica: ClassVar[str] = ""
    """"module:Class" of a loopback replica of the archive (an
    ``emingest.testing.replicas.Replica``) for ``emingest demo`` and tests; "" for none."""

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

    # -- optional parts, with defaults -------------------------------------------------------

    def check_request(self, spec: Sequence[str], options: Mapping[str, Any]) -> None:
        """Raise :class:`~emingest.errors.ConfigError` when ``spec`` and ``options`` cannot
        name anything (a malformed id, a missing required option), before any request: the
        command line then exits 2. Default: anything goes."""
        return None

    def labels_target(self, ref: VolumeRef) -> VolumeRef | None:
        """The image ``ref`` is a labels image of (e.g. ground truth), else None (default)."""
        return None

    def preflight_urls(self) -> list[str]:
        """What ``emingest run`` reaches once before it starts (default: nothing)."""
        return []

    def preflight(self, *, timeout_s: float) -> Preflight:
        """Reach the archive once within ``timeout_s``; never raises. Default: GET the first
        of :meth:`preflight_urls` (any HTTP status means the archive answers)."""
        urls = self.preflight_urls()
        if not urls:
            return Preflight(self.name, "-", True, "nothing to reach", 0.0)
        return probe_http(self.name, urls[0], timeout_s=timeout_s)

    @classmethod
    def default_datasets(cls) -> list[DatasetSettings]:
        """What ``emingest run`` ingests from this archive when no ``[[datasets]]`` are
        configured (default: nothing)."""
        return []

    def list_contents(self, spec: Sequence[str], **options: Any) -> list[str]:
        """Lines for ``--list``: what the ids hold. Default: each discovered volume's shape,
        type and voxel size (describe only, no voxel read)."""
        lines = []
        for ref in self.discover(spec, **options):
            info = self.describe(ref)
            voxel = "x".join(f"{v:g}" for v in info.voxel_size_nm) if info.voxel_size_nm else "?"
            lines.append(
                f"{ref.source}/{ref.source_id}/{ref.name}  {'x'.join(map(str, info.shape))}  "
                f"{info.dtype}  voxel {voxel} nm"
            )
        return lines

    def close(self) -> None:
        """Release connections and pools (default: nothing to release)."""
        return None


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


def options_for(source: type[Source] | Source, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` validated against the source's options model, as keyword arguments for
    ``discover`` (unset ones left out); a clear :class:`ConfigError` otherwise."""
    from pydantic import ValidationError

    from emingest.errors import ConfigError

    try:
        model = source.options_model.model_validate(dict(options))
    except ValidationError as err:
        raise ConfigError(f"invalid options for source {source.name!r}:\n{err}") from err
    return model.model_dump(exclude_none=True)


__all__ = [
    "Preflight",
    "PyramidReader",
    "Region",
    "Source",
    "SourceOptions",
    "SourceSettings",
    "VolumeInfo",
    "VolumeReader",
    "VolumeRef",
    "options_for",
    "probe_http",
    "source_settings",
]
