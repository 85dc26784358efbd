"""The ``emingest`` command. The only place that configures logging and progress output."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from emingest.catalog.cli import catalog_app
from emingest.config import Settings, load_settings
from emingest.errors import ConfigError, EmingestError
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult, jobs_for
from emingest.progress import LogProgress, Progress, RichProgress
from emingest.sources import create_source
from emingest.sources.base import VolumeRef

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
app.add_typer(catalog_app, name="catalog")

log = logging.getLogger("emingest")


def _print_version(value: bool) -> None:
    if value:
        from emingest._version import __version__

        typer.echo(f"emingest {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Ingest volume EM from public archives into OME-Zarr with a metadata catalog."""


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
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="List the volumes and files that would be ingested, then stop (API calls and "
        "listings only: nothing is downloaded, no data is written)",
    ),
]


def _overrides(
    data_root: Path | None = None,
    keep_raw: bool | None = None,
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
    if keep_raw is not None:
        storage["keep_raw"] = keep_raw
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


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it), not the one at start."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(settings: Settings, source: str) -> Path:
    """Log to ``logs/<source>_<YYYYmmdd_HHMMSS>.log`` and to stderr."""
    log_dir = settings.logging.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{source}_{time.strftime('%Y%m%d_%H%M%S')}.log"
    root = logging.getLogger()
    root.setLevel(settings.logging.level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        root.addHandler(RichHandler(show_path=False, rich_tracebacks=False))
    else:
        sh = _CurrentStderrHandler()
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


def _ingest(
    source_name: str,
    spec: list[str],
    settings: Settings,
    *,
    force: bool,
    dry_run: bool = False,
    voxel_size_nm: tuple[float, float, float] | None = None,
    **options: Any,
) -> None:
    """Discover the volumes ``spec`` names, ingest them, print one line each, exit 0/1/2.
    ``dry_run``: print what was discovered and stop."""
    log_path = setup_logging(settings, source_name)
    source: Any = None
    try:
        try:
            source = create_source(source_name, settings)
            refs = source.discover(spec, **{k: v for k, v in options.items() if v is not None})
        except EmingestError as err:
            log.error("%s", err)
            typer.echo(f"emingest: {err}", err=True)
            raise typer.Exit(2 if isinstance(err, ConfigError) else 1) from err
        if dry_run:
            for line in plan_lines(refs):
                typer.echo(line)
            n = len(refs)
            typer.echo(
                f"{n} volume{'' if n == 1 else 's'}; --dry-run: nothing downloaded, no data written"
            )
            raise typer.Exit(0)
        jobs = jobs_for(source, refs, voxel_size_nm=voxel_size_nm)
        results = run_jobs(settings, jobs, force=force)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    log.info("log written to %s", log_path)
    raise typer.Exit(report(results))


def plan_lines(refs: Sequence[VolumeRef]) -> list[str]:
    """One line per discovered volume: its id, where it comes from, and what the source said
    of it (long lists are counted, their first and last items named)."""
    lines = []
    for r in refs:
        details = []
        for key, value in r.extra:
            if isinstance(value, tuple) and len(value) > 3:
                value = f"{len(value)} ({value[0]} … {value[-1]})"
            elif isinstance(value, tuple):
                value = ", ".join(str(v) for v in value)
            details.append(f"{key}={value}")
        lines.append(
            f"{r.source}/{r.source_id}/{r.name}  {r.locator}  {'  '.join(details)}".rstrip()
        )
    return lines


def _with_source(settings: Settings, name: str, **values: Any) -> Settings:
    """Settings with ``[sources.<name>]`` keys set from command-line flags (None: unset)."""
    section = {
        **settings.source_section(name),
        **{k: v for k, v in values.items() if v is not None},
    }
    return settings.model_copy(update={"sources": {**settings.sources, name: section}})


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
    dry_run: DryRunOpt = False,
) -> None:
    """Ingest local volumes (multi-page/ImageJ/OME TIFF, MRC, 2-D slice folders, Zarr)."""
    settings = _settings(
        config, data_root=data_root, workers=workers, chunk=chunk, shard=shard, levels=levels
    )
    _ingest("local", paths, settings, force=force, dry_run=dry_run, voxel_size_nm=voxel_size_nm)


KeepRawOpt = Annotated[
    bool | None,
    typer.Option(
        "--keep-raw/--no-keep-raw", help="Keep downloads after conversion", show_default=False
    ),
]


@ingest_app.command("idr")
def ingest_idr(
    image_ids: Annotated[list[str] | None, typer.Argument(help="IDR image ids")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Every image of this dataset id")
    ] = None,
    api_url: Annotated[str | None, typer.Option(help="[sources.idr.api_url]")] = None,
    files_url: Annotated[
        str | None, typer.Option(help="FTP or HTTPS root of /pub/databases/IDR")
    ] = None,
    keep_raw: KeepRawOpt = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    chunk: ChunkOpt = None,
    shard: ShardOpt = None,
    levels: LevelsOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Ingest IDR images from their original files (never the rendered JPEGs)."""
    settings = _settings(
        config,
        data_root=data_root,
        workers=workers,
        chunk=chunk,
        shard=shard,
        levels=levels,
        keep_raw=keep_raw,
    )
    settings = _with_source(settings, "idr", api_url=api_url, files_url=files_url)
    if not image_ids and dataset is None:
        typer.echo("emingest: give IMAGE_ID... or --dataset ID", err=True)
        raise typer.Exit(2)
    _ingest("idr", image_ids or [], settings, force=force, dry_run=dry_run, dataset=dataset)


@ingest_app.command("epfl")
def ingest_epfl(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="volumedata training training_groundtruth testing "
            "testing_groundtruth (default: all)"
        ),
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="[sources.epfl.base_url]")] = None,
    keep_raw: KeepRawOpt = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    chunk: ChunkOpt = None,
    shard: ShardOpt = None,
    levels: LevelsOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Ingest the EPFL CA1 hippocampus volumes; ground truth becomes labels of its volume."""
    settings = _settings(
        config,
        data_root=data_root,
        workers=workers,
        chunk=chunk,
        shard=shard,
        levels=levels,
        keep_raw=keep_raw,
    )
    settings = _with_source(settings, "epfl", base_url=base_url)
    _ingest("epfl", names or [], settings, force=force, dry_run=dry_run)


@ingest_app.command("empiar")
def ingest_empiar(
    entries: Annotated[list[str], typer.Argument(help="Entry ids: 11759 or EMPIAR-11759")],
    files: Annotated[
        list[str] | None, typer.Option("--files", help="Glob of files to take (repeatable)")
    ] = None,
    max_files: Annotated[
        int | None, typer.Option("--max-files", help="At most N files per entry (a trial run)")
    ] = None,
    api_url: Annotated[str | None, typer.Option(help="[sources.empiar.api_url]")] = None,
    files_url: Annotated[
        str | None, typer.Option(help="FTP or HTTPS root of world_availability")
    ] = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    chunk: ChunkOpt = None,
    shard: ShardOpt = None,
    levels: LevelsOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Ingest EMPIAR entries: DM3/DM4 slice series become z-stacks, MRC files volumes."""
    settings = _settings(
        config, data_root=data_root, workers=workers, chunk=chunk, shard=shard, levels=levels
    )
    settings = _with_source(settings, "empiar", api_url=api_url, files_url=files_url)
    _ingest(
        "empiar",
        entries,
        settings,
        force=force,
        dry_run=dry_run,
        files=files or None,
        max_files=max_files,
    )


@ingest_app.command("openorganelle")
def ingest_openorganelle(
    datasets: Annotated[list[str], typer.Argument(help="Dataset ids, e.g. jrc_mus-nacc-2")],
    array: Annotated[
        str | None, typer.Option("--array", help="Array group, e.g. recon-2/em/fibsem-int16")
    ] = None,
    source_levels: Annotated[
        str | None, typer.Option("--levels", help="Source levels to copy: 0,2 or 0-3")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Crop z0:z1,y0:y1,x0:x1 in level-0 voxels")
    ] = None,
    list_only: Annotated[bool, typer.Option("--list", help="Show the dataset's arrays")] = False,
    endpoint_url: Annotated[str | None, typer.Option(help="S3 endpoint (default AWS)")] = None,
    bucket: Annotated[str | None, typer.Option(help="[sources.openorganelle.bucket]")] = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    chunk: ChunkOpt = None,
    shard: ShardOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Copy an OpenOrganelle (COSEM) array and its own pyramid from anonymous S3."""
    settings = _settings(config, data_root=data_root, workers=workers, chunk=chunk, shard=shard)
    settings = _with_source(settings, "openorganelle", endpoint_url=endpoint_url, bucket=bucket)
    if list_only:
        source: Any = create_source("openorganelle", settings)
        for dataset in datasets:
            try:
                for a in source.list_arrays(dataset):
                    shapes = ", ".join(f"{p}{list(sh)}" for p, sh in a.levels)
                    typer.echo(
                        f"{dataset}/{a.path}  {a.dtype}  voxel {a.voxel_size_nm} nm  "
                        f"levels: {shapes}"
                    )
            except EmingestError as err:
                typer.echo(f"emingest: {err}", err=True)
                raise typer.Exit(1) from err
        raise typer.Exit(0)
    _ingest(
        "openorganelle",
        datasets,
        settings,
        force=force,
        dry_run=dry_run,
        array=array,
        levels=source_levels,
        region=region,
    )


@ingest_app.command("flyem")
def ingest_flyem(
    via: Annotated[str, typer.Option(help="dvid or precomputed")] = "dvid",
    box: Annotated[
        str | None, typer.Option(help="z0:z1,y0:y1,x0:x1 in absolute voxels (half-open)")
    ] = None,
    crop: Annotated[
        int | None, typer.Option(help="Random cube of N voxels (default 1000 without --box)")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the random crop (recorded; drawn if unset)")
    ] = None,
    scale: Annotated[int | None, typer.Option(help="Precomputed scale index")] = None,
    dvid_url: Annotated[str | None, typer.Option(help="[sources.flyem.dvid_url]")] = None,
    precomputed_url: Annotated[
        str | None, typer.Option(help="[sources.flyem.precomputed_url]")
    ] = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    chunk: ChunkOpt = None,
    shard: ShardOpt = None,
    levels: LevelsOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Copy a box or a seeded random crop of the FlyEM hemibrain (DVID or precomputed)."""
    settings = _settings(
        config, data_root=data_root, workers=workers, chunk=chunk, shard=shard, levels=levels
    )
    settings = _with_source(settings, "flyem", dvid_url=dvid_url, precomputed_url=precomputed_url)
    _ingest(
        "flyem",
        [],
        settings,
        force=force,
        dry_run=dry_run,
        via=via,
        box=box,
        crop=crop,
        seed=seed,
        scale=scale,
    )


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_summary(rows: list[dict[str, Any]]) -> None:
    headers = [
        "dataset",
        "volume",
        "status",
        "shape",
        "voxel_nm",
        "bytes",
        "seconds",
        "mb_s",
        "record",
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, title="emingest run")
        for r in rows:
            table.add_row(*(str(r[h]) for h in headers))
        Console().print(table)
        return
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) if rows else len(h) for h in headers}
    typer.echo("  ".join(h.upper().ljust(widths[h]) for h in headers))
    for r in rows:
        typer.echo("  ".join(str(r[h]).ljust(widths[h]) for h in headers).rstrip())


def _run_and_summarise(
    settings: Settings, datasets: list[Any], *, force: bool, preflight_timeout_s: float
) -> int:
    from emingest.run import all_complete, per_source_logs, run_datasets, summary_rows

    log_path = setup_logging(settings, "run")
    stamp = log_path.stem.split("_", 1)[1]
    per_source_logs(settings.logging.log_dir, [d.source for d in datasets], stamp)
    progress: Progress
    if sys.stderr.isatty():
        with RichProgress() as progress:
            outcomes = run_datasets(
                settings,
                datasets,
                progress=progress,
                force=force,
                preflight_timeout_s=preflight_timeout_s,
                report_line=typer.echo,
            )
    else:
        outcomes = run_datasets(
            settings,
            datasets,
            progress=LogProgress(),
            force=force,
            preflight_timeout_s=preflight_timeout_s,
            report_line=typer.echo,
        )
    _print_summary(summary_rows(outcomes))
    typer.echo(f"logs: {settings.logging.log_dir}/*_{stamp}.log")
    return 0 if all_complete(outcomes) else 1


@app.command("run")
def run(
    config: Annotated[
        Path | None, typer.Argument(help="TOML with [[datasets]] (default: the five datasets)")
    ] = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    preflight_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each archive's first answer")
    ] = 5.0,
    force: ForceOpt = False,
) -> None:
    """Ingest every configured dataset from the real archives, concurrently.

    A preflight reaches each archive once; an unreachable archive's datasets fail at once and
    the others go ahead. Complete volumes are skipped, incomplete ones resumed.
    """
    settings = _settings(config, data_root=data_root, workers=workers)
    raise typer.Exit(
        _run_and_summarise(
            settings, list(settings.datasets), force=force, preflight_timeout_s=preflight_timeout
        )
    )


def demo_datasets(settings: Settings) -> list[Any]:
    """The default datasets at replica size: the FlyEM crop shrinks to fit the replica, and
    the OpenOrganelle replica has 3 levels (s0-s2) where the real store has 9."""
    small: dict[str, dict[str, Any]] = {"flyem": {"crop": 64}, "openorganelle": {"levels": "1-2"}}
    return [
        d.model_copy(update={"options": {**d.options, **small.get(d.source, {})}})
        for d in settings.datasets
    ]


@app.command("demo")
def demo(
    root: Annotated[Path, typer.Option(help="Folder for replicas, data and logs")] = Path("demo"),
    serve: Annotated[
        bool, typer.Option(help="Keep the replicas running after the run (Ctrl-C stops)")
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Start replicas of the five archives on 127.0.0.1, run the default configuration against
    them, then build the catalog and the metadata report. Needs no network at all."""
    from emingest.catalog import catalog_db_path, open_catalog
    from emingest.catalog.report import build_report, summary_text, write_report
    from emingest.testing.replicas import ReplicaSet

    with ReplicaSet(root / "replicas") as replicas:
        settings = load_settings(
            overrides={
                "storage": {"data_root": str(root / "data")},
                "logging": {"log_dir": str(root / "logs")},
                "sources": replicas.source_settings(),
            }
        )
        typer.echo("Replicas (127.0.0.1):")
        for archive, urls in replicas.endpoints().items():
            for what, url in urls.items():
                typer.echo(f"  {archive:<14} {what:<13} {url}")
        code = _run_and_summarise(
            settings, demo_datasets(settings), force=force, preflight_timeout_s=2.0
        )
        data_root = settings.storage.data_root
        with open_catalog(settings) as catalog:
            sync = catalog.sync(data_root)
        report = build_report(data_root)
        json_path, _ = write_report(report, data_root)
        typer.echo(summary_text(report))
        skipped = f", {len(sync.skipped)} sidecars skipped" if sync.skipped else ""
        typer.echo(
            f"Data: {data_root}\nCatalog: {catalog_db_path(settings)} ({sync.indexed} records"
            f"{skipped})\nReport: {json_path}"
        )
        from emingest.cli.vectors import print_demo_search  # issue 13: one search by example

        print_demo_search(settings)
        if serve:
            typer.echo("Replicas keep running; Ctrl-C stops them.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    raise typer.Exit(code)


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


from emingest.cli.vectors import register as _register_vectors  # noqa: E402

_register_vectors(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
