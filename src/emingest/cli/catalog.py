"""``emingest catalog …``: sync, list, show and report, as a typer sub-app (``register``).

Reading commands never create anything: with no catalog and no data root, ``list`` prints an
empty result.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from emingest.catalog import (
    STATUS_CHOICES,
    Catalog,
    CatalogFilters,
    CatalogRow,
    DataRoot,
    catalog_db_path,
    is_postgres_url,
    open_catalog,
)
from emingest.cli.app import new_app
from emingest.cli.options import ConfigOpt, DataRootOpt, settings_from_flags
from emingest.config import Settings
from emingest.errors import ConfigError, EmingestError
from emingest.storage import LocalRoot

catalog_app = new_app("Query the catalog of ingested volumes, rebuild it, report on the records.")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Catalog: a SQLite file or a postgresql:// URL "
        "[catalog.url; catalog.db_path; <data_root>/catalog.sqlite]",
    ),
]


def _settings(config: Path | None, data_root: str | None) -> Settings:
    return settings_from_flags(config, data_root=data_root)


def _nothing_there(config: Path | None, data_root: str | None, db: str | None) -> bool:
    """No catalog file and no data root to rebuild one from: a reading command has nothing to
    read, and must not create a database as a side effect. A PostgreSQL catalog is a server:
    always asked."""
    settings = _settings(config, data_root)
    if (db is not None and is_postgres_url(db)) or settings.catalog.url:
        return False
    path = Path(db) if db is not None else catalog_db_path(settings)
    if path.exists():
        return False
    root = settings.storage.root()
    if isinstance(root, LocalRoot):
        return not root.path.is_dir()
    try:
        return not root.exists("")  # a bucket prefix with no object in it
    except EmingestError:
        return False  # opening the catalog reports why the bucket cannot be read


@contextmanager
def _catalog(config: Path | None, data_root: str | None, db: str | None) -> Iterator[Catalog]:
    settings = _settings(config, data_root)
    try:
        catalog = (
            open_catalog(db, data_root=settings.storage.root())
            if db is not None
            else open_catalog(settings)  # catalog.url (PostgreSQL) or the SQLite file
        )
    except EmingestError as err:
        typer.echo(f"emingest: {err}", err=True)
        raise typer.Exit(1) from err
    try:
        yield catalog
    except EmingestError as err:
        typer.echo(f"emingest: {err}", err=True)
        raise typer.Exit(1) from err
    finally:
        catalog.close()


@catalog_app.command("sync")
def sync(
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    db: DbOpt = None,
    from_url: Annotated[
        str | None,
        typer.Option("--from", help="Read the records from s3://bucket/prefix (anonymous)"),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="S3 endpoint for --from [AWS]")
    ] = None,
) -> None:
    """Rebuild the catalog from the record sidecars (the sidecars are the truth)."""
    settings = _settings(config, data_root)
    root: DataRoot = settings.storage.root()  # a folder, or s3:// signed with AWS credentials
    if from_url is not None:
        from emingest.catalog.s3_records import S3Records

        try:
            root = S3Records(from_url, endpoint_url=endpoint_url)
        except ConfigError as err:
            typer.echo(f"emingest: {err}", err=True)
            raise typer.Exit(2) from err
    with _catalog(config, data_root, db) as catalog:
        result = catalog.sync(root)
    for path, reason in result.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    for id_, path in result.duplicates:
        typer.echo(f"duplicate id {id_}: {path} wins", err=True)
    typer.echo(
        f"indexed {result.indexed} records from {root}"
        + (f"; {len(result.skipped)} sidecars skipped" if result.skipped else "")
    )


def _shape_text(row: CatalogRow) -> str:
    return "x".join(str(n) for n in row.shape) if row.shape else "-"


def _voxel_text(row: CatalogRow) -> str:
    return "x".join(f"{v:g}" for v in row.voxel_size_nm) if row.voxel_size_nm else "-"


def _size_text(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


TABLE_COLUMNS: list[tuple[str, Callable[[CatalogRow], str]]] = [
    ("ID", lambda r: r.id),
    ("STATUS", lambda r: r.status),
    ("DTYPE", lambda r: r.dtype or "-"),
    ("SHAPE (ZxYxX)", _shape_text),
    ("VOXEL NM", _voxel_text),
    ("SIZE", lambda r: _size_text(r.nbytes)),
    ("DESCRIPTION", lambda r: " ".join(r.description.split())[:60]),
]
CSV_COLUMNS = [
    "id",
    "source",
    "source_id",
    "name",
    "status",
    "dtype",
    "shape_z",
    "shape_y",
    "shape_x",
    "voxel_z_nm",
    "voxel_y_nm",
    "voxel_x_nm",
    "nbytes",
    "file_size_bytes",
    "sha256",
    "timestamp",
    "record_path",
    "description",
]


def _csv_row(row: CatalogRow) -> list[Any]:
    shape = row.shape or ("", "", "")
    voxel = row.voxel_size_nm or ("", "", "")
    return [
        row.id,
        row.source,
        row.source_id,
        row.name,
        row.status,
        row.dtype or "",
        *shape,
        *voxel,
        "" if row.nbytes is None else row.nbytes,
        "" if row.file_size_bytes is None else row.file_size_bytes,
        row.sha256 or "",
        row.timestamp,
        row.record_path,
        row.description,
    ]


def print_table(rows: list[CatalogRow]) -> None:
    """A rich table on a terminal, plain aligned columns otherwise."""
    cells = [[fmt(r) for _, fmt in TABLE_COLUMNS] for r in rows]
    headers = [h for h, _ in TABLE_COLUMNS]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, header_style="bold")
        for line in cells:
            table.add_row(*line)
        Console().print(table)
        return
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


@catalog_app.command("list")
def list_records(
    source: Annotated[str | None, typer.Option("--source", help="Only this source")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help=f"One of {', '.join(STATUS_CHOICES)}")
    ] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="e.g. uint8")] = None,
    voxel_min: Annotated[
        float | None, typer.Option("--voxel-min", help="Smallest voxel size, nm, every axis")
    ] = None,
    voxel_max: Annotated[
        float | None, typer.Option("--voxel-max", help="Largest voxel size, nm, every axis")
    ] = None,
    min_shape: Annotated[
        tuple[int, int, int] | None,
        typer.Option("--min-shape", help="Smallest shape Z Y X", show_default=False),
    ] = None,
    max_shape: Annotated[
        tuple[int, int, int] | None,
        typer.Option("--max-shape", help="Largest shape Z Y X", show_default=False),
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="Text in the description (any case)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list, for scripts")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header, for scripts")] = False,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    db: DbOpt = None,
) -> None:
    """List indexed records, filtered."""
    if as_json and as_csv:
        typer.echo("emingest: give --json or --csv, not both", err=True)
        raise typer.Exit(2)
    try:
        filters = CatalogFilters(
            source=source,
            status=status,
            dtype=dtype,
            voxel_min_nm=voxel_min,
            voxel_max_nm=voxel_max,
            min_shape=min_shape,
            max_shape=max_shape,
            text=text,
        )
    except EmingestError as err:
        typer.echo(f"emingest: {err}", err=True)
        raise typer.Exit(2) from err
    rows: list[CatalogRow] = []
    if not _nothing_there(config, data_root, db):
        with _catalog(config, data_root, db) as catalog:
            rows = catalog.query(filters)
    if as_json:
        typer.echo(json.dumps([r.summary() for r in rows], indent=2))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_csv_row(r) for r in rows)
    else:
        print_table(rows)


@catalog_app.command("show")
def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="<source>/<source_id>/<name>")],
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    db: DbOpt = None,
) -> None:
    """Print one record in full (its sidecar; the indexed copy when the sidecar is gone)."""
    row = None
    settings = _settings(config, data_root)
    if not _nothing_there(config, data_root, db):
        with _catalog(config, data_root, db) as catalog:
            row = catalog.get(record_id)
    if row is None:
        typer.echo(
            f"emingest: no record {record_id!r} in the catalog "
            "(`emingest catalog list` shows the ids; `catalog sync` re-reads the sidecars)",
            err=True,
        )
        raise typer.Exit(1)
    from emingest.volume import record_location

    try:
        record: Any = json.loads(record_location(row.record_path, settings).read_text())
    except (OSError, ValueError, EmingestError) as err:
        typer.echo(f"emingest: {row.record_path}: {err}; showing the indexed copy", err=True)
        record = row.record
    typer.echo(json.dumps(record, indent=2))


@catalog_app.command("report")
def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Local folder for the report [the data root, a bucket too]"),
    ] = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
    db: DbOpt = None,
) -> None:
    """Write metadata_catalog_<YYYYmmdd_HHMMSS>.json and .log: keys, status, validation."""
    from emingest.catalog.report import build_report, summary_text, write_report

    del db  # the report reads the sidecars themselves; accepted for symmetry
    settings = _settings(config, data_root)
    root = settings.storage.root()
    try:
        if not (root.path.is_dir() if isinstance(root, LocalRoot) else root.exists("")):
            typer.echo(f"emingest: data root {root} does not exist", err=True)
            raise typer.Exit(1)
        data = build_report(root)
        # beside the records: in the folder, or as two objects of the bucket
        json_path, log_path = write_report(data, out if out is not None else root.location())
    except (OSError, EmingestError) as err:
        typer.echo(f"emingest: cannot write the report: {err}", err=True)
        raise typer.Exit(1) from err
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(summary_text(data), markup=False, highlight=False)
    typer.echo(f"wrote {json_path}")
    typer.echo(f"wrote {log_path}")
    if data["unreadable"]:
        typer.echo(f"{len(data['unreadable'])} unreadable sidecars (see {log_path})", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
