"""The options every command shares, declared once, and how flags become settings.

A command composes these ``Annotated`` types; :func:`settings_from_flags` turns the values into
the highest layer of the settings (defaults < TOML < environment < flags).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from emingest.config import Settings, load_settings
from emingest.errors import EmingestError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=False)
]
DataRootOpt = Annotated[
    str | None,
    typer.Option(
        "--data-root", help="Output root, a folder or s3://bucket/prefix [storage.data_root]"
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", "-j", help="Region tasks at once [pipeline.workers]")
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where region tasks run: threads, or dask (extra 'dask') [pipeline.executor]",
        show_default=False,
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="With --executor dask: local (a LocalCluster) or tcp://host:8786 [pipeline.scheduler]",
        show_default=False,
    ),
]
ChunkOpt = Annotated[
    tuple[int, int, int] | None,
    typer.Option("--chunk", help="Chunk shape Z Y X [storage.chunk_shape]", show_default=False),
]
ShardOpt = Annotated[
    tuple[int, int, int] | None,
    typer.Option(
        "--shard",
        help="Shard shape Z Y X, multiples of the chunk (enables sharding) [storage.shard_shape]",
        show_default=False,
    ),
]
LevelsOpt = Annotated[
    int | None,
    typer.Option("--levels", help="Most pyramid levels, s0 included [storage.max_levels]"),
]
KeepRawOpt = Annotated[
    bool | None,
    typer.Option(
        "--keep-raw/--no-keep-raw",
        help="Keep downloads after conversion [storage.keep_raw]",
        show_default=False,
    ),
]
VoxelSizeOpt = Annotated[
    tuple[float, float, float] | None,
    typer.Option("--voxel-size-nm", help="Override: Z Y X in nanometres", show_default=False),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo volumes that are complete")]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="List the volumes and files that would be ingested, then stop (API calls and "
        "listings only: nothing is downloaded, no data is written)",
    ),
]
ListOpt = Annotated[
    bool,
    typer.Option("--list", help="Show what the ids hold (arrays, levels, shapes), then stop"),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="One JSON object per volume on stdout (id, status, shape, voxel_size_nm, record)",
    ),
]


def flag_overrides(
    data_root: str | None = None,
    keep_raw: bool | None = None,
    workers: int | None = None,
    chunk: Sequence[int] | None = None,
    shard: Sequence[int] | None = None,
    levels: int | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """The settings layer the common flags make (unset flags leave the lower layers alone)."""
    storage: dict[str, Any] = {}
    pipeline: dict[str, Any] = {}
    if data_root is not None:
        storage["data_root"] = str(data_root)
    if chunk:
        storage["chunk_shape"] = list(chunk)
    if shard:
        storage["shard_shape"] = list(shard)
    if levels is not None:
        storage["max_levels"] = levels
    if keep_raw is not None:
        storage["keep_raw"] = keep_raw
    if workers is not None:
        pipeline["workers"] = workers
    if executor is not None:
        pipeline["executor"] = executor
    if scheduler is not None:
        pipeline["scheduler"] = scheduler
    out: dict[str, Any] = {}
    if storage:
        out["storage"] = storage
    if pipeline:
        out["pipeline"] = pipeline
    return out


def fail(message: object, code: int) -> typer.Exit:
    """Print ``emingest: message`` on stderr; the caller raises the returned exit."""
    typer.echo(f"emingest: {message}", err=True)
    return typer.Exit(code)


def settings_from_flags(
    config: Path | None, *, sources: dict[str, dict[str, Any]] | None = None, **flags: Any
) -> Settings:
    """Resolve the settings with the flags on top; invalid settings exit 2 with one message."""
    overrides = flag_overrides(**flags)
    if sources:
        overrides["sources"] = sources
    try:
        return load_settings(config, overrides=overrides)
    except EmingestError as err:
        raise fail(_first_line_of_validation(err), 2) from err


def _first_line_of_validation(err: EmingestError) -> str:
    """One line for invalid settings: what and where, from pydantic's report without its
    input dumps and links (``storage: shard shape 96 128 128 is not a multiple of ...``)."""
    cause = err.__cause__
    if not isinstance(cause, ValidationError):
        return str(err)
    head = str(err).splitlines()[0].rstrip(":")
    problems = [
        f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
        for e in cause.errors()
    ]
    return f"{head}: {'; '.join(problems)}"


__all__ = [
    "ChunkOpt",
    "ConfigOpt",
    "DataRootOpt",
    "DryRunOpt",
    "ExecutorOpt",
    "ForceOpt",
    "JsonOpt",
    "KeepRawOpt",
    "LevelsOpt",
    "ListOpt",
    "SchedulerOpt",
    "ShardOpt",
    "VoxelSizeOpt",
    "WorkersOpt",
    "fail",
    "flag_overrides",
    "settings_from_flags",
]
