"""The ``emingest`` command. The only place that configures logging and progress output."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from emingest.config import Settings, load_settings
from emingest.errors import EmingestError
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult
from emingest.progress import LogProgress, Progress, RichProgress
from emingest.sources import create_source

app = typer.Typer(
    name="emingest",
    help="Ingest volume EM from public archives into OME-Zarr with a metadata catalog.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(help="Ingest volumes from one source.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
config_app = typer.Typer(help="Show or check the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

log = logging.getLogger("emingest")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=False)
]
DataRootOpt = Annotated[
    Path | None, typer.Option("--data-root", help="Output root [storage.data_root]")
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", "-j", help="Region tasks at once [pipeline.workers]")
]
ChunkOpt = Annotated[
    tuple[int, int, int] | None,
    typer.Option("--chunk", help="Chunk shape Z Y X [storage.chunk_shape]", show_default=False),
]
ShardOpt = Annotated[
    tuple[int, int, int] | None,
    typer.Option("--shard", help="Shard shape Z Y X (enables sharding)", show_default=False),
]
LevelsOpt = Annotated[int | None, typer.Option("--levels", help="Most pyramid levels, s0 included")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo volumes that are complete")]


def _overrides(
    data_root: Path | None = None,
    workers: int | None = None,
    chunk: Sequence[int] | None = None,
    shard: Sequence[int] | None = None,
    levels: int | None = None,
) -> dict[str, Any]:
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
    if workers is not None:
        pipeline["workers"] = workers
    out: dict[str, Any] = {}
    if storage:
        out["storage"] = storage
    if pipeline:
        out["pipeline"] = pipeline
    return out


def _settings(config: Path | None, **flags: Any) -> Settings:
    try:
        return load_settings(config, overrides=_overrides(**flags))
    except EmingestError as err:
        typer.echo(f"emingest: {err}", err=True)
        raise typer.Exit(2) from err


def setup_logging(settings: Settings, source: str) -> Path:
    """Log to ``logs/<source>_<YYYYmmdd_HHMMSS>.log`` and to stderr."""
    log_dir = settings.logging.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{source}_{time.strftime('%Y%m%d_%H%M%S')}.log"
    root = logging.getLogger()
    root.setLevel(settings.logging.level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        root.addHandler(RichHandler(show_path=False, rich_tracebacks=False))
    else:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(sh)
    for noisy in ("pyftpdlib", "urllib3", "botocore", "s3fs", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def run_jobs(settings: Settings, jobs: list[VolumeJob], *, force: bool) -> list[VolumeResult]:
    """Run the pipeline with a live display on a terminal, plain log lines otherwise."""
    progress: Progress
    if sys.stderr.isatty():
        with RichProgress() as progress, Pipeline(settings, progress=progress) as pipe:
            return pipe.run(jobs, force=force)
    progress = LogProgress()
    with Pipeline(settings, progress=progress) as pipe:
        return pipe.run(jobs, force=force)


def report(results: list[VolumeResult]) -> int:
    """One line per volume; exit code 0 only when every volume is complete (or skipped)."""
    for r in results:
        shape = r.record.volume_shape if r.record else None
        line = f"{r.ref.source}/{r.ref.source_id}/{r.ref.name}: {r.status}"
        if shape:
            line += f", shape {shape}"
        typer.echo(f"{line} (record {r.record_path})", err=not r.ok)
    failed = sum(not r.ok for r in results)
    if failed:
        typer.echo(f"emingest: {failed} of {len(results)} volumes failed", err=True)
    return 1 if failed else 0


@ingest_app.command("local")
def ingest_local(
    paths: Annotated[list[str], typer.Argument(help="TIFF, MRC, Zarr, folder or glob of slices")],
    voxel_size_nm: Annotated[
        tuple[float, float, float] | None,
        typer.Option("--voxel-size-nm", help="Override: Z Y X in nanometres", show_default=False),
    ] = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    chunk: ChunkOpt = None,
    shard: ShardOpt = None,
    levels: LevelsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Ingest local volumes (multi-page/ImageJ/OME TIFF, MRC, 2-D slice folders, Zarr)."""
    settings = _settings(
        config, data_root=data_root, workers=workers, chunk=chunk, shard=shard, levels=levels
    )
    log_path = setup_logging(settings, "local")
    try:
        source = create_source("local", settings)
        refs = source.discover(paths)
    except EmingestError as err:
        typer.echo(f"emingest: {err}", err=True)
        raise typer.Exit(2) from err
    jobs = [VolumeJob(source, ref, voxel_size_nm) for ref in refs]
    results = run_jobs(settings, jobs, force=force)
    log.info("log written to %s", log_path)
    raise typer.Exit(report(results))


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective configuration as TOML."""
    from emingest.config_toml import settings_to_toml

    typer.echo(settings_to_toml(_settings(config)))


@app.command("schema")
def schema(
    output: Annotated[Path, typer.Option(help="Where to write")] = Path(
        "schemas/record.schema.json"
    ),
    check: Annotated[bool, typer.Option(help="Fail if the file differs")] = False,
) -> None:
    """Write (or check) the JSON Schema of the metadata record."""
    from emingest.records import record_json_schema_text

    text = record_json_schema_text()
    if check:
        same = output.exists() and output.read_text(encoding="utf-8") == text
        typer.echo(f"{output}: {'up to date' if same else 'DIFFERS from the model'}")
        raise typer.Exit(0 if same else 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
