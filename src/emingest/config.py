"""Settings: one pydantic model, resolved once and passed explicitly.

Precedence, lowest first: built-in defaults < TOML file < environment variables
``EMINGEST_<SECTION>__<KEY>`` < command-line flags. No other module reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emingest.errors import ConfigError
from emingest.transports.settings import TransportSettings

ENV_PREFIX = "EMINGEST_"
MiB = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageSettings(_Section):
    """Where and how volumes are written."""

    data_root: Path = Field(
        Path("data"), description="Root folder of <source>/<id>/<name>.ome.zarr"
    )
    chunk_shape: tuple[int, int, int] = Field((128, 128, 128), description="Chunk shape, z y x")
    shard_shape: tuple[int, int, int] | None = Field(
        None, description="Shard shape (z y x, multiples of chunk_shape); None: no sharding"
    )
    # On EM noise every zstd level gives the same ratio (1.2719 at 1 vs 1.2721 at 3 on the
    # benchmark volume) while level 1 encodes ~20% faster: 2 cores are the bottleneck.
    zstd_level: int = Field(
        1, ge=-7, le=22, description="zstd level (1: same ratio on EM, fastest)"
    )
    max_levels: int | None = Field(
        None, ge=1, description="Most pyramid levels (s0 included); None: until one chunk fits"
    )
    keep_raw: bool = Field(True, description="Keep downloaded originals after conversion")

    @field_validator("chunk_shape", "shard_shape")
    @classmethod
    def _positive(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and min(v) < 1:
            raise ValueError("every axis must be >= 1")
        return v


class PipelineSettings(_Section):
    """Concurrency and memory: the knobs that bound peak memory by design."""

    # One task more than cores: the digest task holds a thread for the whole of level 0.
    workers: int = Field(default_factory=lambda: (os.cpu_count() or 2) + 1, ge=1)
    tile_bytes: int = Field(
        32 * MiB,
        ge=1,
        description="Largest region one task reads at once; peak memory ~ workers x 3 x this",
    )
    concurrent_volumes: int = Field(2, ge=1, description="Volumes ingested at the same time")
    executor: str = Field(
        "threads", description="'threads' (the only one so far; see docs/architecture.md)"
    )

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, v: str) -> str:
        # Region tasks share in-process state (the tile journal, the writer, progress), so an
        # executor in other processes, such as a Dask cluster, needs more than a setting.
        if v != "threads":
            raise ValueError(f"executor {v!r} is not supported yet; use 'threads'")
        return v


class LogSettings(_Section):
    log_dir: Path = Field(Path("logs"), description="Folder of <source>_<YYYYmmdd_HHMMSS>.log")
    level: str = "INFO"


class CatalogSettings(_Section):
    db_path: Path | None = Field(
        None, description="Catalog database file; None: <data_root>/catalog.sqlite"
    )


class EmbedSettings(_Section):
    """Patch embeddings (docs/vectors.md): what ``emingest embed`` and ``run`` compute and
    where the index lives."""

    models: list[str] = Field(
        default_factory=lambda: ["scattering"],
        description="Embedders `emingest run` applies after ingesting; [] embeds nothing",
    )
    patch_nm: float = Field(512.0, gt=0, description="Patch width in nm (read at a fitting level)")
    stride_nm: float | None = Field(None, gt=0, description="Patch spacing in nm; None: patch_nm")
    slice_every: int = Field(
        0, ge=0, description="2-D mode: embed every k-th slice of the level; 0: stride in z"
    )
    mode: str = Field("2d", pattern="^(2d|3d)$", description="2d: patches on slices; 3d: cubes")
    batch_size: int = Field(64, ge=1, description="Patches per embedder call (bounds memory)")
    weights: Path | None = Field(None, description="Weights file of a learned embedder (torch)")
    backend: str = Field("faiss", pattern="^(faiss|pgvector)$", description="Vector index")
    index_dir: Path | None = Field(None, description="faiss index files; None: <data_root>/vectors")
    postgres_dsn: str | None = Field(None, description="pgvector backend: libpq connection string")
    hnsw_m: int = Field(32, ge=4, description="HNSW graph degree")
    hnsw_ef_construction: int = Field(80, ge=8)
    hnsw_ef_search: int = Field(64, ge=1, description="HNSW search breadth (raised to k)")
    exact_below: int = Field(
        20000, ge=0, description="A filter matching at most this many patches is searched exactly"
    )


class DatasetSettings(_Section):
    """One dataset of ``emingest run``: a source, the ids it names and its discover options."""

    name: str
    source: str
    ids: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


def default_datasets() -> list[DatasetSettings]:
    """The five datasets users of the earlier pipeline know (docs/running.md says why these
    levels and crop)."""
    return [
        DatasetSettings(name="idr-9846137", source="idr", ids=["9846137"]),
        DatasetSettings(name="empiar-11759", source="empiar", ids=["11759"]),
        # All five files; the ground truths become labels of training/testing.
        DatasetSettings(name="epfl-ca1", source="epfl"),
        # s0 is 7.4 GB of int16: by default copy s1..s8 (s1 = 0.9 GB at 5.92 x 8 x 8 nm).
        DatasetSettings(
            name="openorganelle-jrc_mus-nacc-2",
            source="openorganelle",
            ids=["jrc_mus-nacc-2"],
            options={"levels": "1-8"},
        ),
        DatasetSettings(
            name="flyem-hemibrain-crop",
            source="flyem",
            options={"via": "dvid", "crop": 1000, "seed": 20260101},
        ),
    ]


class Settings(_Section):
    """Everything a run needs. Sources get their own section under ``sources.<name>``."""

    storage: StorageSettings = Field(default_factory=StorageSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    logging: LogSettings = Field(default_factory=LogSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    transport: TransportSettings = Field(
        default_factory=TransportSettings,
        description="Timeouts, connection limits, retries and segments of every file archive; "
        "a source's own [sources.<name>.transport] overrides single keys",
    )
    # Per-source settings are validated by each source's own model (see sources/base.py), so a
    # third-party source can bring its own section without touching this file.
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    datasets: list[DatasetSettings] = Field(
        default_factory=default_datasets, description="What `emingest run` ingests"
    )

    def source_section(self, name: str) -> dict[str, Any]:
        return dict(self.sources.get(name, {}))


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``EMINGEST_STORAGE__DATA_ROOT=/x`` -> ``{"storage": {"data_root": "/x"}}``.

    Values are parsed as JSON when they parse (numbers, lists, booleans), else kept as text.
    """
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(path) < 2:
            continue
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings: defaults < TOML < environment < ``overrides`` (the CLI's flags)."""
    merged: dict[str, Any] = {}
    if config_file is not None:
        try:
            merged = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(f"configuration file not found: {config_file}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{config_file}: not valid TOML: {err}") from err
    merged = deep_merge(merged, env_overrides(os.environ if environ is None else environ))
    merged = deep_merge(merged, overrides or {})
    try:
        return Settings.model_validate(merged)
    except ValidationError as err:
        where = f" (from {config_file})" if config_file else ""
        raise ConfigError(f"invalid settings{where}:\n{err}") from err
