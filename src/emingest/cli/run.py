"""``emingest run`` (every configured dataset, after a preflight) and ``emingest demo`` (the
same against loopback replicas of the archives)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from emingest.cli.app import setup_logging
from emingest.cli.options import (
    DataRootOpt,
    ExecutorOpt,
    ForceOpt,
    JsonOpt,
    SchedulerOpt,
    WorkersOpt,
    fail,
    settings_from_flags,
)
from emingest.cli.results import (
    EXIT_INTERRUPTED,
    INTERRUPTED_MESSAGE,
    progress_display,
    stop_on_ctrl_c,
    volume_json,
)
from emingest.config import DatasetSettings, Settings, load_settings
from emingest.errors import ConfigError


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
        Console().print(table, markup=False)
        return
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) if rows else len(h) for h in headers}
    typer.echo("  ".join(h.upper().ljust(widths[h]) for h in headers))
    for r in rows:
        typer.echo("  ".join(str(r[h]).ljust(widths[h]) for h in headers).rstrip())


def run_and_summarise(
    settings: Settings,
    datasets: list[DatasetSettings],
    *,
    force: bool,
    preflight_timeout_s: float,
    as_json: bool = False,
) -> int:
    """Run the datasets, print the summary (or one JSON object per volume), return the exit
    code: 0 all complete, 1 something failed, 130 interrupted."""
    from emingest.run import all_complete, per_source_logs, run_datasets, summary_rows

    log_path = setup_logging(settings, "run")
    stamp = log_path.stem.split("_", 1)[1]
    per_source_logs(settings.log_dir, [d.source for d in datasets], stamp)
    lines = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    with stop_on_ctrl_c() as stop, progress_display() as progress:
        try:
            outcomes = run_datasets(
                settings,
                datasets,
                progress=progress,
                force=force,
                preflight_timeout_s=preflight_timeout_s,
                report_line=lines,
                stop=stop,
            )
        except ConfigError as err:  # e.g. a Dask scheduler that cannot be reached
            raise fail(err, 2) from err
    if as_json:
        for o in outcomes:
            if o.error is not None:
                typer.echo(
                    json.dumps(
                        {
                            "id": f"{o.dataset.source}:{o.dataset.name}",
                            "status": f"error: {o.error}",
                            "shape": None,
                            "voxel_size_nm": None,
                            "record": None,
                        }
                    )
                )
            for r in o.results:
                typer.echo(json.dumps(volume_json(r)))
    else:
        _print_summary(summary_rows(outcomes))
    lines(f"logs: {settings.log_dir}/*_{stamp}.log")
    if stop.is_set():
        typer.echo(INTERRUPTED_MESSAGE, err=True)
        return EXIT_INTERRUPTED
    return 0 if all_complete(outcomes) else 1


def run(
    config: Annotated[
        Path | None,
        typer.Argument(help="TOML with [[datasets]] (default: every source's default datasets)"),
    ] = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    preflight_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each archive's first answer")
    ] = 5.0,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest every configured dataset from the real archives, concurrently.

    A preflight reaches each archive once; an unreachable archive's datasets fail at once and
    the others go ahead. Complete volumes are skipped, incomplete ones resumed.
    """
    from emingest.run import configuration_problems, resolve_datasets

    settings = settings_from_flags(
        config, data_root=data_root, workers=workers, executor=executor, scheduler=scheduler
    )
    problems = configuration_problems(settings)
    if problems:  # a typo in the configuration is not an unreachable archive
        raise fail("\n".join(problems), 2)
    raise typer.Exit(
        run_and_summarise(
            settings,
            resolve_datasets(settings),
            force=force,
            preflight_timeout_s=preflight_timeout,
            as_json=as_json,
        )
    )


def demo_datasets(settings: Settings) -> list[DatasetSettings]:
    """The datasets of ``settings`` (default: every source's) at replica size: each replica
    says which options shrink its archive's datasets (a smaller crop, fewer levels)."""
    from emingest.run import resolve_datasets
    from emingest.testing.replicas import demo_options

    small = demo_options()
    return [
        d.model_copy(update={"options": {**d.options, **small.get(d.source, {})}})
        for d in resolve_datasets(settings)
        if d.source in small
    ]


def demo(
    root: Annotated[Path, typer.Option(help="Folder for replicas, data and logs")] = Path("demo"),
    serve: Annotated[
        bool, typer.Option(help="Then serve the data (API, web page) on serve.port; Ctrl-C stops")
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Start replicas of the archives on 127.0.0.1, run the default configuration against
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
        code = run_and_summarise(
            settings, demo_datasets(settings), force=force, preflight_timeout_s=2.0
        )
        data_root = settings.storage.root()
        with open_catalog(settings) as catalog:
            sync = catalog.sync(data_root)
        report = build_report(data_root)
        json_path, _ = write_report(report, data_root.location())
        typer.echo(summary_text(report))
        skipped = f", {len(sync.skipped)} sidecars skipped" if sync.skipped else ""
        typer.echo(
            f"Data: {data_root}\nCatalog: {catalog_db_path(settings)} ({sync.indexed} records"
            f"{skipped})\nReport: {json_path}"
        )
        from emingest.cli.vectors import print_demo_search  # one search by example

        print_demo_search(settings)
        if serve and code != EXIT_INTERRUPTED:
            from emingest.cli.serve import run_server

            run_server(settings, banner="Replicas keep running. ")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)


__all__ = ["demo", "demo_datasets", "register", "run", "run_and_summarise"]
