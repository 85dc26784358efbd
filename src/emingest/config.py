"""Settings: one pydantic model, resolved once and passed explicitly.

Precedence, lowest first: built-in defaults < TOML file < environment variables
``EMINGEST_<SECTION>__<KEY>`` < command-line flags. No other module reads ``os.environ``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from emingest.errors import ConfigError
from emingest.storage import DataRoot, LocalRoot, S3Config, S3Root, parse_s3_url
from emingest.transports.settings import TransportSettings

ENV_PREFIX = "EMINGEST_"
S3Url = Annotated[str, StringConstraints(pattern=r"^s3://[^/]+(/.*)?$")]
"""An S3 data root, ``s3://bucket/prefix``."""
MiB = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageSettings(_Section):
    """Where and how volumes are written."""

    data_root: Path | S3Url = Field(
        Path("data"),
        description="Root of <source>/<id>/<name>.ome.zarr: a folder, or s3://bucket/prefix",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint of an s3:// data root (MinIO, Ceph...); None: AWS, or the "
        "AWS_ENDPOINT_URL variable",
    )
    s3_region: str = Field("us-east-1", description="Region of an s3:// data root")
    s3_anonymous: bool = Field(
        False, description="Unsigned requests to an s3:// data root (public, read-mostly)"
    )
    s3_credentials: Literal["default", "environment"] = Field(
        "default",
        description="Where the voxel writer (tensorstore's s3 driver) finds credentials: the "
        "whole AWS chain (environment, profile files, instance metadata) or the AWS_* "
        "variables only; set to environment when AWS_ACCESS_KEY_ID is set",
    )
    s3_max_attempts: int = Field(
        6, ge=1, description="Attempts per request to an s3:// data root (boto3 standard retries)"
    )
    s3_lease_ttl_s: float = Field(
        60.0,
        gt=0,
        description="On an s3:// data root, a volume's lease (one writer across machines) "
        "expires this long after its holder stops renewing it",
    )
    work_dir: Path | None = Field(
        None,
        description="Local folder for what cannot live in a bucket (locks, logs, the SQLite "
        "catalog, download cache, faiss files) when data_root is s3://; None: "
        "~/.cache/emingest/s3/<bucket>/<prefix>",
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
        None,
        ge=1,
        description="Pyramid levels (s0 included), fewer or more than the rule gives; "
        "None: until a whole level fits one chunk (docs/pyramid.md)",
    )
    keep_raw: bool = Field(True, description="Keep downloaded originals after conversion")

    def root(self) -> DataRoot:
        """The data root: outputs (stores, records, journals, embeddings) go through it."""
        if isinstance(self.data_root, Path):
            return LocalRoot(self.data_root)
        return S3Root(self.data_root, self.s3_config())

    def s3_config(self) -> S3Config:
        """How this data root's bucket (or any ``s3://`` URL a record names) is reached."""
        return S3Config(
            self.s3_endpoint_url,
            self.s3_region,
            anonymous=self.s3_anonymous,
            credentials=self.s3_credentials,
            max_attempts=self.s3_max_attempts,
        )

    @property
    def local_root(self) -> Path:
        """The local folder of machine-local state (locks, logs, caches, SQLite, faiss files):
        the data root itself when it is a folder, else ``work_dir``."""
        if isinstance(self.data_root, Path):
            return self.data_root
        if self.work_dir is not None:
            return self.work_dir
        bucket, prefix = parse_s3_url(self.data_root)
        return Path.home() / ".cache" / "emingest" / "s3" / bucket / prefix

    @field_validator("data_root", mode="before")
    @classmethod
    def _data_root(cls, v: Any) -> Any:
        if isinstance(v, str) and v.startswith("s3://"):
            parse_s3_url(v)  # a clear error for s3:// alone or a '..' in the prefix
            return v.rstrip("/")
        if isinstance(v, str) and "://" in v:
            raise ValueError(f"{v!r}: a data root is a folder or s3://bucket/prefix")
        return Path(v) if isinstance(v, str) else v

    @field_validator("chunk_shape", "shard_shape")
    @classmethod
    def _positive(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and min(v) < 1:
            raise ValueError("every axis must be >= 1")
        return v

    @model_validator(mode="after")
    def _shard_holds_whole_chunks(self) -> StorageSettings:
        shard, chunk = self.shard_shape, self.chunk_shape
        if shard is not None and any(s % c for s, c in zip(shard, chunk, strict=True)):
            raise ValueError(
                f"shard shape {' '.join(map(str, shard))} is not a multiple of the chunk shape "
                f"{' '.join(map(str, chunk))} on every axis (z y x)"
            )
        return self


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
    journal_checkpoint_s: float = Field(
        2.0,
        ge=0,
        description="On an s3:// data root, the resume journal is saved at most this often (a "
        "kill redoes the tiles since); a local journal is appended per tile",
    )
    executor: Literal["threads", "dask"] = Field(
        "threads",
        description="'threads' (this process) or 'dask' (a Dask cluster; pip install "
        "'emingest[dask]'; docs/scaling.md)",
    )
    scheduler: str = Field(
        "local",
        description="With executor 'dask': 'local' starts a LocalCluster of `workers` "
        "processes; else the scheduler's address, e.g. tcp://host:8786",
    )
    scheduler_timeout_s: float = Field(
        30.0, gt=0, description="How long to wait for the Dask scheduler at `scheduler`"
    )

    @field_validator("executor")
    @classmethod
    def _executor_installed(cls, v: str) -> str:
        # Checked here too, so the command line stops with exit 2 before any work starts.
        if v == "dask" and importlib.util.find_spec("distributed") is None:
            raise ValueError("executor 'dask' needs Dask distributed: pip install 'emingest[dask]'")
        return v

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, scheduler: str) -> str:
        if scheduler != "local" and "://" not in scheduler:
            raise ValueError(f"scheduler {scheduler!r}: 'local' or an address like tcp://host:8786")
        return scheduler


class LogSettings(_Section):
    log_dir: Path | None = Field(
        None, description="Folder of <source>_<YYYYmmdd_HHMMSS>.log; None: <data_root>/logs"
    )
    level: str = "INFO"


class CatalogSettings(_Section):
    db_path: Path | None = Field(
        None, description="Catalog database file; None: <data_root>/catalog.sqlite"
    )
    url: str | None = Field(
        None,
        description="PostgreSQL catalog, postgresql://user:pass@host:5432/db (extra 'postgres'); "
        "None: the SQLite file",
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("catalog.url must start with postgresql:// (or leave it unset)")
        return v


class LimitSettings(_Section):
    """What emingest refuses before it spends memory or disk on it (docs/reliability.md)."""

    max_plane_bytes: int = Field(
        4 << 30, ge=1, description="Largest 2-D plane a file header may claim (decoded bytes)"
    )
    max_volume_bytes: int = Field(
        64 << 40, ge=1, description="Largest volume a file header may claim (decoded bytes)"
    )
    max_decode_bytes: int = Field(
        1 << 30,
        ge=1,
        description="Largest strip or tile decoded at once (a compressed TIFF page is decoded "
        "whole: its plane must fit too)",
    )
    max_compression_ratio: float = Field(
        2000.0,
        gt=1,
        description="Largest decoded/stored ratio a compressed strip or tile may claim "
        "(deflate tops out near 1032, zstd/LZW higher on blank data)",
    )
    min_free_bytes: int = Field(
        1 << 30, ge=0, description="Warn before a run when less is free under the data root"
    )


class ServeSettings(_Section):
    """``emingest serve``: the HTTP API, the web page and the jobs it runs."""

    host: str = Field("127.0.0.1", description="Address to bind; elsewhere, jobs need a token")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 picks a free one")
    token: str | None = Field(
        None, description="Bearer token the job endpoints require (required off loopback)"
    )
    max_region_bytes: int = Field(
        64 * MiB, ge=1, description="Largest region one request may read (413 above)"
    )
    max_request_bytes: int = Field(
        16 * MiB, ge=1, description="Largest request body (an uploaded patch, a job)"
    )
    page_limit: int = Field(1000, ge=1, description="Most records one /api/records page lists")
    job_workers: int = Field(1, ge=1, description="Jobs run at the same time")
    thumbnail_px: int = Field(256, ge=16, le=2048, description="Longest side of a thumbnail")
    cache_dir: Path | None = Field(
        None, description="Thumbnail cache; None: <data_root>/.cache/thumbnails"
    )
    chunk_cache_bytes: int = Field(
        256 * MiB,
        ge=0,
        description="Decoded chunks the server keeps (neighbouring planes share chunks); 0: none",
    )
    access_log: bool = Field(False, description="Log one line per request (costs throughput)")


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


class Settings(_Section):
    """Everything a run needs. Sources get their own section under ``sources.<name>``."""

    storage: StorageSettings = Field(default_factory=StorageSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    logging: LogSettings = Field(default_factory=LogSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    transport: TransportSettings = Field(
        default_factory=TransportSettings,
        description="Timeouts, connection limits, retries and segments of every file archive; "
        "a source's own [sources.<name>.transport] overrides single keys",
    )
    limits: LimitSettings = Field(default_factory=LimitSettings)
    # Per-source settings are validated by each source's own model (see sources/base.py), so a
    # third-party source can bring its own section without touching this file.
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    # None: every source's own default datasets (sources.default_datasets), so a plug-in
    # brings its defaults without touching this file; `emingest config show` lists them.
    datasets: list[DatasetSettings] | None = Field(
        None, description="What `emingest run` ingests; None: each source's default datasets"
    )

    def source_section(self, name: str) -> dict[str, Any]:
        return dict(self.sources.get(name, {}))

    @property
    def log_dir(self) -> Path:
        """Where logs go: ``logging.log_dir``, or ``<data_root>/logs`` when unset."""
        configured = self.logging.log_dir
        return configured if configured is not None else self.storage.local_root / "logs"


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
    env = environ if environ is not None else os.environ
    storage = merged.get("storage")
    if isinstance(storage, dict):
        # the standard variables of AWS's SDKs: tensorstore's s3 kvstore does not read
        # AWS_ENDPOINT_URL, and with keys in the environment it need not probe profile files
        if env.get("AWS_ENDPOINT_URL") and not storage.get("s3_endpoint_url"):
            storage = {**storage, "s3_endpoint_url": env["AWS_ENDPOINT_URL"]}
        if env.get("AWS_ACCESS_KEY_ID") and "s3_credentials" not in storage:
            storage = {**storage, "s3_credentials": "environment"}
        merged["storage"] = storage
    try:
        return Settings.model_validate(merged)
    except ValidationError as err:
        where = f" (from {config_file})" if config_file else ""
        raise ConfigError(f"invalid settings{where}:\n{err}") from err
