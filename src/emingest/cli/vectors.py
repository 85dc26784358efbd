"""``emingest embed``, ``emingest search`` and ``emingest vectors sync`` (issue 13)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from emingest.config import Settings, load_settings
from emingest.errors import ConfigError, EmingestError

vectors_app = typer.Typer(help="The vector index of patch embeddings.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file")]
DataRootOpt = Annotated[
    str | None,
    typer.Option(
        "--data-root", help="Output root, a folder or s3://bucket/prefix [storage.data_root]"
    ),
]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Embedder name (repeatable) [embed.models]"),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", help="Weights file of a learned embedder [embed.weights]"),
]

EmbedExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where blocks of patches are embedded: threads, or dask (extra 'dask') "
        "[pipeline.executor]",
        show_default=False,
    ),
]
EmbedSchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="With --executor dask: local (a LocalCluster) or tcp://host:8786 [pipeline.scheduler]",
        show_default=False,
    ),
]
EmbedWorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", "-j", help="Blocks at once (threads or Dask processes) [pipeline.workers]"
    ),
]


def _fail(err: EmingestError) -> typer.Exit:
    typer.echo(f"emingest: {err}", err=True)
    return typer.Exit(2 if isinstance(err, ConfigError) else 1)


def _embed_settings(
    config: Path | None,
    data_root: str | None,
    pipeline: dict[str, Any] | None = None,
    **embed: Any,
) -> Settings:
    overrides: dict[str, Any] = {}
    if data_root is not None:
        overrides["storage"] = {"data_root": str(data_root)}
    chosen_pipeline = {k: v for k, v in (pipeline or {}).items() if v is not None}
    if chosen_pipeline:
        overrides["pipeline"] = chosen_pipeline
    chosen = {k: (str(v) if isinstance(v, Path) else v) for k, v in embed.items() if v is not None}
    if chosen:
        overrides["embed"] = chosen
    try:
        return load_settings(config, overrides=overrides)
    except EmingestError as err:
        raise _fail(err) from err


def embed(
    record_ids: Annotated[
        list[str] | None, typer.Argument(help="Catalog ids (see `emingest catalog list`)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every complete volume")] = False,
    model: ModelOpt = None,
    patch_nm: Annotated[
        float | None, typer.Option("--patch-nm", help="Patch width in nm [embed.patch_nm]")
    ] = None,
    stride_nm: Annotated[
        float | None, typer.Option("--stride-nm", help="Patch spacing in nm [embed.stride_nm]")
    ] = None,
    slice_every: Annotated[
        int | None, typer.Option("--slice-every", help="2-D: every k-th slice [embed.slice_every]")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="2d or 3d [embed.mode]")] = None,
    weights: WeightsOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute complete embeddings")] = False,
    executor: EmbedExecutorOpt = None,
    scheduler: EmbedSchedulerOpt = None,
    workers: EmbedWorkersOpt = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
) -> None:
    """Embed every patch of a grid over volumes and index the vectors (resumes after a kill)."""
    from emingest.cli import setup_logging
    from emingest.progress import LogProgress, RichProgress
    from emingest.vectors import embed_records

    if not record_ids and not all_:
        typer.echo("emingest: give catalog IDs or --all", err=True)
        raise typer.Exit(2)
    settings = _embed_settings(
        config,
        data_root,
        {"executor": executor, "scheduler": scheduler, "workers": workers},
        patch_nm=patch_nm,
        stride_nm=stride_nm,
        slice_every=slice_every,
        mode=mode,
        weights=weights,
        models=list(model) if model else None,
    )
    setup_logging(settings, "embed")
    ids = None if all_ else list(record_ids or [])
    try:
        if sys.stderr.isatty():
            with RichProgress() as progress:
                results = embed_records(settings, ids, progress=progress, force=force)
        else:
            results = embed_records(settings, ids, progress=LogProgress(), force=force)
    except EmingestError as err:
        raise _fail(err) from err
    for r in results:
        typer.echo(f"{r.record_id}: {r.status}, {r.patches} patches, {r.seconds:.1f} s ({r.model})")
    failed = sum(not r.ok for r in results)
    if failed:
        typer.echo(f"emingest: {failed} of {len(results)} embeddings failed", err=True)
    raise typer.Exit(1 if failed else 0)


def search(
    like: Annotated[str | None, typer.Option("--like", help="Catalog id of the example")] = None,
    at: Annotated[
        tuple[int, int, int] | None,
        typer.Option("--at", help="Level-0 voxel Z Y X of the example patch's centre"),
    ] = None,
    like_image: Annotated[
        Path | None, typer.Option("--like-image", help="A 2-D image file as the example")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="How many hits")] = 10,
    source: Annotated[str | None, typer.Option("--source", help="Only this source")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="FIELD OP VALUE, e.g. 'z<100' or 'record_id=idr/1/a'"),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Embedder name")] = None,
    weights: WeightsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of hits")] = False,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
) -> None:
    """The patches nearest to an example, across the whole catalog."""
    from emingest.vectors import read_image, search_array, search_like

    if (like is None) == (like_image is None) or (like is not None and at is None):
        typer.echo("emingest: give --like ID --at Z Y X, or --like-image FILE", err=True)
        raise typer.Exit(2)
    settings = _embed_settings(config, data_root, weights=weights)
    try:
        if like is not None:
            assert at is not None
            hits = search_like(settings, like, at, k=k, source=source, where=where, model=model)
        else:
            assert like_image is not None
            image = read_image(like_image)
            hits = search_array(settings, image, k=k, source=source, where=where, model=model)
    except EmingestError as err:
        raise _fail(err) from err
    rows = [h.to_dict() for h in hits]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _print_hits(rows)


def _print_hits(rows: list[dict[str, Any]]) -> None:
    headers = ["distance", "record_id", "center_zyx", "center_nm", "level"]

    def cell(row: dict[str, Any], h: str) -> str:
        v = row[h]
        if h == "distance":
            return f"{v:.4f}"
        if isinstance(v, list):
            return " ".join(f"{x:g}" for x in v)
        return "-" if v is None else str(v)

    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers)
        for r in rows:
            table.add_row(*(cell(r, h) for h in headers))
        Console().print(table)
        return
    cells = [[cell(r, h) for h in headers] for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)))
    for c in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


@vectors_app.command("sync")
def vectors_sync(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    data_root: DataRootOpt = None,
) -> None:
    """Rebuild the vector index from the embeddings stored in the volumes."""
    from emingest.vectors import sync_index

    settings = _embed_settings(config, data_root)
    try:
        counts = sync_index(settings, models=list(model) if model else None)
    except EmingestError as err:
        raise _fail(err) from err
    for key, n in counts.items():
        typer.echo(f"{key}: {n} vectors indexed")
    if not counts:
        typer.echo("no embeddings found (run `emingest embed --all`)")


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
    app.command("search")(search)
    app.add_typer(vectors_app, name="vectors")


def print_demo_search(settings: Settings) -> None:
    """For ``emingest demo``: the top hits of one search by example from the middle of the
    first embedded volume (the volumes were embedded by the run)."""
    from emingest.vectors import make_encoder, open_vector_index, search_like
    from emingest.vectors.embed import stored_vectors_count

    try:
        key = make_encoder(settings).space.key
        index = open_vector_index(settings)
        try:
            embedded = sorted(index.indexed(key))
        finally:
            index.close()
        counts = {rid: stored_vectors_count(settings, rid, key) for rid in embedded}
        embedded = [rid for rid, n in counts.items() if n]
        if not embedded:
            typer.echo("Vectors: none (no volume was embedded)")
            return
        typer.echo(f"Vectors: {sum(counts.values())} patches of {len(embedded)} volumes ({key})")
        rid = embedded[0]
        at = _middle_patch(settings, rid, key)
        typer.echo(f"emingest search --like {rid} --at {at[0]} {at[1]} {at[2]} -k 5")
        _print_hits([h.to_dict() for h in search_like(settings, rid, at, k=5)])
    except EmingestError as err:
        typer.echo(f"Vectors: search failed: {err}", err=True)


def _middle_patch(settings: Settings, record_id: str, key: str) -> tuple[int, int, int]:
    """The centre of the middle stored patch of a volume (its own hit comes first)."""
    import numpy as np

    from emingest.catalog import open_catalog
    from emingest.vectors.embed import volume_location
    from emingest.vectors.store import EmbeddingStore

    with open_catalog(settings) as catalog:
        row = catalog.get(record_id)
    if row is None:
        raise ConfigError(f"{record_id}: not in the catalog")
    volume = volume_location(settings, row.record["local_paths"]["volume"])
    store = EmbeddingStore(volume, key)
    centers = np.concatenate([c for c, _ in store.iter_chunks()])
    z, y, x = (int(v) for v in centers[len(centers) // 2])
    return z, y, x
