"""Embedding volumes: every patch of the grid, streamed block by block, resumable.

Blocks (one z position x a band of patch rows, within ``pipeline.tile_bytes``) run on a thread
pool of ``pipeline.workers``; each reads its voxels from the chosen pyramid level, embeds its
patches in batches of ``embed.batch_size`` and writes its own chunks of the store, then is
appended to the journal. A killed run resumes with the blocks not in the journal. When every
block is written the group is marked complete and the volume's vectors go into the index.

With ``pipeline.executor = "dask"`` (``embed --executor dask``) blocks are tasks on a Dask
cluster instead (:mod:`emingest.vectors.distributed`): each opens the volume and builds its
embedder in its worker and returns the block's vectors; the driver writes them and keeps the
journal, so a store and its resume are the same whichever executor ran the blocks.

The volume's store may be below a folder or an S3 prefix (``storage.data_root``): it is named
by a :class:`~emingest.storage.Location` throughout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emingest.catalog import CatalogFilters, open_catalog
from emingest.dask_cluster import DaskClient
from emingest.errors import ConfigError, ConversionError, EmingestError
from emingest.journal import TileJournal
from emingest.progress import NullProgress, Progress
from emingest.records import VolumeRecord, locate_in_root
from emingest.storage import Location, as_location
from emingest.vectors.backends import open_vector_index
from emingest.vectors.embedders import create_embedder
from emingest.vectors.encoder import PatchEncoder, cut_patches, normalise
from emingest.vectors.grid import LevelInfo, PatchGrid, plan_grid
from emingest.vectors.index import VolumeVectors
from emingest.vectors.store import EmbeddingStore
from emingest.vectors.zarr_io import open_level

if TYPE_CHECKING:
    from emingest.config import Settings

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    record_id: str
    model: str
    status: str
    """``embedded``, ``skipped`` (already complete), ``empty`` (smaller than a patch) or
    ``error: ...``."""
    patches: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.status.startswith("error")


@dataclass(frozen=True)
class EncoderSpec:
    """What builds an encoder, in any process: a Dask worker makes its own (and loads a
    learned embedder's weights itself) from this."""

    name: str
    options: tuple[tuple[str, Any], ...]
    mode: str
    patch_nm: float

    def build(self) -> PatchEncoder:
        embedder = create_embedder(self.name, dict(self.options))
        return PatchEncoder(embedder, mode=self.mode, patch_nm=self.patch_nm)


def encoder_spec(settings: Settings, model: str | None = None) -> EncoderSpec:
    cfg = settings.embed
    name = model or (cfg.models[0] if cfg.models else "scattering")
    options: dict[str, Any] = {}
    if cfg.weights is not None:
        options["weights"] = str(cfg.weights)
    return EncoderSpec(name, tuple(sorted(options.items())), cfg.mode, cfg.patch_nm)


def make_encoder(settings: Settings, model: str | None = None) -> PatchEncoder:
    """The embedder ``model`` (default: the first of ``[embed] models``) on the configured
    patches."""
    return encoder_spec(settings, model).build()


def volume_location(settings: Settings, volume: str) -> Location:
    """A record's ``local_paths.volume`` below the settings' data root (folder or S3)."""
    return locate_in_root(volume, settings.storage.root())


def record_levels(record: VolumeRecord) -> list[LevelInfo]:
    if not record.scales:
        raise ConversionError(f"{record.source}/{record.source_id}/{record.name}: no levels")
    return [
        LevelInfo(
            s.path,
            (int(s.shape[0]), int(s.shape[1]), int(s.shape[2])),
            tuple(s.voxel_size_nm) if s.voxel_size_nm else None,  # type: ignore[arg-type]
        )
        for s in record.scales
    ]


def volume_grid(settings: Settings, record: VolumeRecord, encoder: PatchEncoder) -> PatchGrid:
    cfg = settings.embed
    t0 = record.scales[0].translation_nm if record.scales else None
    return plan_grid(
        record_levels(record),
        embedder_px=encoder.input_px,
        patch_nm=cfg.patch_nm,
        stride_nm=cfg.stride_nm,
        slice_every=cfg.slice_every,
        mode=cfg.mode,
        tile_bytes=settings.pipeline.tile_bytes,
        itemsize=np.dtype(record.dtype or "uint8").itemsize,
        translation0_nm=tuple(t0) if t0 else None,  # type: ignore[arg-type]
    )


def volume_normalisation(record: VolumeRecord) -> tuple[float, float]:
    stats = record.statistics
    if stats is None or not stats.std:
        return 0.0, 1.0
    return float(stats.mean), float(stats.std)


def read_region(store: Location | Path, level_path: str, region: Any) -> np.ndarray:
    location = store if isinstance(store, Location) else as_location(store)
    return read_by_chunks(open_level(location / level_path), region)


def read_by_chunks(array: Any, region: tuple[slice, slice, slice]) -> np.ndarray:
    """``array[region]``, read one chunk column (y, x) at a time.

    A slice of a volume in 128^3 chunks touches chunks holding 128 times its voxels; read piece
    by piece, at most one chunk's worth is decoded beyond the output, whatever the slice's size
    and however many chunks zarr would decode concurrently.
    """
    zs, ys, xs = region
    out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), array.dtype)
    cy, cx = int(array.chunks[1]), int(array.chunks[2])
    y0 = ys.start
    while y0 < ys.stop:
        y1 = min(ys.stop, (y0 // cy + 1) * cy)  # to the next chunk boundary
        x0 = xs.start
        while x0 < xs.stop:
            x1 = min(xs.stop, (x0 // cx + 1) * cx)
            out[:, y0 - ys.start : y1 - ys.start, x0 - xs.start : x1 - xs.start] = array[
                zs, y0:y1, x0:x1
            ]
            x0 = x1
        y0 = y1
    return out


def embed_volume(
    settings: Settings,
    record: VolumeRecord,
    encoder: PatchEncoder,
    *,
    progress: Progress | None = None,
    force: bool = False,
    index: Any = None,
    runner: Any = None,
    spec: EncoderSpec | None = None,
) -> EmbedResult:
    """Embed one complete volume into its store (resuming a killed run), then index it.

    ``runner``: a :class:`~emingest.vectors.distributed.DaskBlocks` to run the blocks on
    (``spec`` names the encoder its workers build); None: a thread pool of this process."""
    progress = progress or NullProgress()
    rid = f"{record.source}/{record.source_id}/{record.name}"
    space = encoder.space
    t0 = time.monotonic()
    if not record.is_complete:
        return EmbedResult(rid, space.key, f"error: volume not complete ({record.status})")
    store_path = volume_location(settings, record.local_paths.volume)
    store = EmbeddingStore(store_path, space.key)
    grid = volume_grid(settings, record, encoder)
    mean, std = volume_normalisation(record)
    attrs = {
        "embedder": space.to_dict(),
        "record_id": rid,
        "source": record.source,
        "volume_sha256": record.sha256,
        "normalisation": {"mean": mean, "std": std},
    }
    plan = {"space": space.key, "grid": grid.to_attrs(), "sha256": record.sha256}
    existing = store.attrs()
    same = (
        existing is not None
        and existing.get("volume_sha256") == record.sha256
        and (existing.get("grid") == grid.to_attrs())
    )
    label = f"embed {rid}"
    if not force and same and existing and existing.get("complete"):
        result = EmbedResult(rid, space.key, "skipped", grid.n_patches)
    else:
        journal = TileJournal(store.journal_location, plan)
        resuming = not force and same and journal.load()
        if not resuming:
            store.create(grid, encoder.dim, attrs)
            journal.start_fresh()
        else:
            log.info("%s: resuming, %d blocks already embedded", label, journal.count(0))
        blocks = list(grid.blocks())
        per_block = grid.patch_px[0] * grid.patch_px[1] * grid.patch_px[2]
        progress.start(label, label, grid.n_patches * per_block)
        own_runner = runner is None and settings.pipeline.executor == "dask"
        if own_runner:
            from emingest.vectors.distributed import DaskBlocks

            runner = DaskBlocks(settings.pipeline)
        try:
            if runner is not None:
                runner.embed_blocks(
                    settings,
                    store,
                    store_path,
                    grid,
                    spec or encoder_spec(settings),
                    journal,
                    blocks,
                    (mean, std),
                    progress,
                    label,
                )
            else:
                _embed_blocks(
                    settings,
                    store,
                    store_path,
                    grid,
                    encoder,
                    journal,
                    blocks,
                    (mean, std),
                    progress,
                    label,
                )
        except BaseException:
            progress.finish(label, "error")
            raise
        finally:
            journal.close()
            if own_runner:
                runner.close()
        store.mark_complete()
        journal.remove()
        progress.finish(label, "complete")
        result = EmbedResult(rid, space.key, "embedded", grid.n_patches)
        rate = grid.n_patches / max(time.monotonic() - t0, 1e-9)
        log.info(
            "%s: %d patches at level %d, %.1f patches/s", label, grid.n_patches, grid.level, rate
        )
    if grid.n_patches == 0:
        result.status = "empty"
        log.warning("%s: smaller than one %g nm patch, no vectors", rid, settings.embed.patch_nm)
    own = index is None
    index = index or open_vector_index(settings)
    try:
        if index.indexed(space.key).get(rid) != _fingerprint(record, grid):
            index.add_volume(space, stored_vectors(store, rid, record.source, record.sha256))
    finally:
        if own:
            index.close()
    result.seconds = time.monotonic() - t0
    return result


def _fingerprint(record: VolumeRecord, grid: PatchGrid) -> str:
    return f"{record.sha256}:{grid.level}:{grid.counts}"


def stored_vectors(store: EmbeddingStore, rid: str, source: str, sha: str | None) -> VolumeVectors:
    """The complete vectors of one store group, as an index takes them."""
    grid = store.grid()

    def chunks() -> Any:
        for centers, vectors in store.iter_chunks():
            yield centers, vectors, grid.to_nm(centers)

    fingerprint = f"{sha}:{grid.level}:{grid.counts}"
    return VolumeVectors(rid, source, grid.level, fingerprint, chunks)


def block_vectors(
    array: Any,
    grid: PatchGrid,
    encoder: PatchEncoder,
    iz: int,
    band: int,
    norm: tuple[float, float],
    batch: int,
) -> np.ndarray:
    """The vectors [rows, gx, dim] of one block, read from ``array`` (a level) and embedded
    in batches of ``batch`` patches: the same work in a thread or a Dask worker."""
    rows = grid.rows(band)
    data = normalise(read_by_chunks(array, grid.block_region(iz, band)), *norm)
    patches = cut_patches(data, grid.patch_px, grid.stride_px, len(rows), grid.counts[2])
    vectors = (
        np.concatenate(
            [encoder.encode(patches[i : i + batch]) for i in range(0, len(patches), batch)]
        )
        if len(patches)
        else np.zeros((0, encoder.dim), np.float32)
    )
    return vectors.reshape(len(rows), grid.counts[2], -1)


def blocks_to_do(
    grid: PatchGrid,
    journal: TileJournal,
    blocks: list[tuple[int, int]],
    progress: Progress,
    label: str,
) -> list[tuple[int, int]]:
    """The blocks not in the journal; the others count as progress at once."""
    per_patch = grid.patch_px[0] * grid.patch_px[1] * grid.patch_px[2]
    todo = []
    for iz, band in blocks:
        if journal.is_done(0, (iz, band)):
            progress.advance(label, len(grid.rows(band)) * grid.counts[2] * per_patch)
        else:
            todo.append((iz, band))
    return todo


def block_done(
    store: EmbeddingStore,
    grid: PatchGrid,
    journal: TileJournal,
    iz: int,
    band: int,
    vectors: np.ndarray,
    progress: Progress,
    label: str,
) -> None:
    """Write a block's vectors and centres into the store, then journal it."""
    rows = grid.rows(band)
    store.write_block(iz, rows, vectors, grid.block_centers(iz, band))
    journal.mark_done(0, (iz, band))
    log.debug("%s: block %d/%d done", label, iz, band)
    per_patch = grid.patch_px[0] * grid.patch_px[1] * grid.patch_px[2]
    progress.advance(label, len(rows) * grid.counts[2] * per_patch)


def _embed_blocks(
    settings: Settings,
    store: EmbeddingStore,
    store_path: Location,
    grid: PatchGrid,
    encoder: PatchEncoder,
    journal: TileJournal,
    blocks: list[tuple[int, int]],
    norm: tuple[float, float],
    progress: Progress,
    label: str,
) -> None:
    array = open_level(store_path / grid.level_path)
    batch = settings.embed.batch_size

    def one(iz: int, band: int) -> None:
        vectors = block_vectors(array, grid, encoder, iz, band, norm, batch)
        block_done(store, grid, journal, iz, band, vectors, progress, label)

    todo = blocks_to_do(grid, journal, blocks, progress, label)
    workers = max(1, settings.pipeline.workers)
    with ThreadPoolExecutor(workers, thread_name_prefix="emingest-embed") as pool:
        # at most 2 x workers blocks in flight: memory follows the workers, not the volume
        pending: list[Any] = []
        for iz, band in todo:
            pending.append(pool.submit(one, iz, band))
            if len(pending) >= 2 * workers:
                pending.pop(0).result()
        for f in pending:
            f.result()


def embed_records(
    settings: Settings,
    record_ids: Sequence[str] | None = None,
    *,
    models: Sequence[str] | None = None,
    progress: Progress | None = None,
    force: bool = False,
    dask: DaskClient | None = None,
) -> list[EmbedResult]:
    """Embed catalog volumes (``None``: every complete one) with each model (``None``: the
    ``[embed] models``). A volume's failure is reported in its result; the others go on.
    For ``emingest run`` and the demo after ingesting (``dask``: the run's Dask client, lent)."""
    names = list(models) if models is not None else list(settings.embed.models)
    if not names:
        return []
    with open_catalog(settings) as catalog:
        if record_ids is None:
            rows = catalog.query(CatalogFilters(status="complete"))
        else:
            rows = []
            for rid in record_ids:
                row = catalog.get(rid)
                if row is None:
                    raise ConfigError(
                        f"no volume {rid!r} in the catalog (see `emingest catalog list`)"
                    )
                rows.append(row)
    results: list[EmbedResult] = []
    runner = None
    if settings.pipeline.executor == "dask":
        from emingest.vectors.distributed import DaskBlocks

        runner = DaskBlocks(settings.pipeline, dask)
    index = open_vector_index(settings)
    try:
        for name in names:
            spec = encoder_spec(settings, name)
            encoder = spec.build()
            for row in rows:
                if "/labels/" in row.record.get("local_paths", {}).get("volume", ""):
                    continue  # a labels image: its image is embedded, not its masks
                t0 = time.monotonic()
                try:
                    record = VolumeRecord.model_validate(row.record)
                    results.append(
                        embed_volume(
                            settings,
                            record,
                            encoder,
                            progress=progress,
                            force=force,
                            index=index,
                            runner=runner,
                            spec=spec,
                        )
                    )
                except (EmingestError, OSError, ValueError) as err:
                    log.error("embed %s: %s", row.id, err)
                    results.append(
                        EmbedResult(
                            row.id,
                            encoder.space.key,
                            f"error: {type(err).__name__}: {err}",
                            0,
                            time.monotonic() - t0,
                        )
                    )
    finally:
        index.close()
        if runner is not None:
            runner.close()
    return results


def embed_after_ingest(
    settings: Settings,
    results: Sequence[Any],
    *,
    progress: Progress | None = None,
    report_line: Any = None,
    dask: DaskClient | None = None,
) -> list[EmbedResult]:
    """``emingest run``'s last step: embed the volumes a run ingested (or found complete)
    with the ``[embed] models``; nothing when none are named. Never raises: a failure is
    logged and reported, the ingest's outcome stands."""
    if not settings.embed.models:
        return []
    ids = []
    for r in results:
        rec = getattr(r, "record", None)
        if getattr(r, "ok", False) and rec is not None and rec.is_complete:
            ids.append(f"{rec.source}/{rec.source_id}/{rec.name}")
    try:
        out = embed_records(settings, ids, progress=progress, dask=dask) if ids else []
    except (EmingestError, OSError) as err:
        log.error("embedding after the ingest failed: %s", err)
        return []
    if report_line is not None:
        for e in out:
            report_line(f"embed {e.record_id}: {e.status}, {e.patches} patches ({e.model})")
    return out


def stored_vectors_count(settings: Settings, record_id: str, key: str) -> int:
    """Patches a volume has in a space's store group (0 when none)."""
    with open_catalog(settings) as catalog:
        row = catalog.get(record_id)
    if row is None:
        return 0
    volume = volume_location(settings, row.record["local_paths"]["volume"])
    attrs = EmbeddingStore(volume, key).attrs()
    if not attrs or not attrs.get("complete"):
        return 0
    return PatchGrid.from_attrs(attrs["grid"]).n_patches
