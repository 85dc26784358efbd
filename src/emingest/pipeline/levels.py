"""Writing a volume's levels: plan its region tasks, run them on the executor, digest level 0.

Level-0 tiles are aligned to the write block times level 1's factor, so each also writes its
level-1 block from memory; levels 2+ are built from the level below. The driver side of every
task (journal, progress, the digest's order) is the ``done`` callback here, the same for
threads and Dask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from emingest.errors import ConversionError, RunInterrupted
from emingest.journal import TileJournal
from emingest.omezarr.writer import OmeZarrWriter
from emingest.pipeline.digest import OrderedDigest, ReusedBuffers
from emingest.pipeline.executors import RegionExecutor
from emingest.pipeline.tasks import RegionTask, VolumeContext, VolumePlan
from emingest.progress import Progress
from emingest.regions import choose_tile, iter_tiles, plane_bands, region_nbytes
from emingest.sources.base import Region, VolumeReader
from emingest.statistics import StreamingDigest


def write_levels(
    regions: RegionExecutor,
    progress: Progress,
    plan: VolumePlan,
    writer: OmeZarrWriter,
    reader: VolumeReader,
    journal: TileJournal,
) -> StreamingDigest:
    """Level 0 from the source in tiles that also write level 1 from memory, then each
    higher level from the one below; returns level 0's digest."""
    label, levels, budget = plan.label, plan.levels, plan.budget
    dtype = np.dtype(plan.dtype)
    itemsize = dtype.itemsize
    shape = levels[0].shape
    block = writer.write_block
    # Tiles of (write block x level 1's factor) on each axis also write level 1 whole from
    # memory, which saves decoding all of level 0 again; fall back to single blocks when
    # the budget is small.
    factor1 = levels[1].factor if len(levels) > 1 else (1, 1, 1)
    align = tuple(b * f for b, f in zip(block, factor1, strict=True))
    inline = len(levels) > 1 and int(np.prod(align)) * itemsize <= budget
    if not inline:
        align = block
    shrink1 = int(np.prod(factor1))
    tile = choose_tile(shape, align, itemsize, budget)
    digest = StreamingDigest(dtype)
    digest_done = threading.Event()
    buffers = ReusedBuffers(reader, dtype)
    ctx = VolumeContext(plan, reader, writer, buffers.read)

    def run_digest() -> None:
        try:
            for band in plane_bands(shape, itemsize, budget):
                if regions.stop.is_set():
                    raise RunInterrupted("interrupted")
                digest.update(buffers.read(band))
        finally:
            digest_done.set()

    # A remote reader is not read twice: its digest comes from the level 0 just written,
    # band by band while the other tiles are still being fetched. A local one is digested
    # by a task of its own in this process (also when the tiles go to Dask).
    ordered = None
    if reader.digest_from_store:
        ordered = OrderedDigest(
            digest, shape, tile, block, budget, itemsize, lambda b: writer.read(0, b)
        )

    def done(task: RegionTask, nbytes: int) -> None:
        journal.mark_done(task.level, task.idx)
        progress.advance(label, nbytes)
        if ordered is not None and task.level == 0:
            ordered.tile_done(task.idx[0])

    tasks: list[RegionTask] = []
    for idx, region in iter_tiles(shape, tile):
        if journal.is_done(0, idx):
            nbytes = region_nbytes(region, itemsize)
            progress.advance(label, nbytes + (nbytes // shrink1 if inline else 0))
            continue
        if ordered is not None:
            ordered.expect(idx[0])
        tasks.append(RegionTask("level0", 0, idx, region, inline))
    regions.run(ctx, tasks, done, [] if ordered is not None else [run_digest])

    for lv in range(2 if inline else 1, len(levels)):
        tasks = []
        shrink = int(np.prod(levels[lv].factor))
        tile_l = choose_tile(levels[lv].shape, block, itemsize, max(budget // shrink, 1))
        for idx, region in iter_tiles(levels[lv].shape, tile_l):
            if journal.is_done(lv, idx):
                progress.advance(label, region_nbytes(region, itemsize))
                continue
            tasks.append(RegionTask("level", lv, idx, region))
        regions.run(ctx, tasks, done)
    if ordered is not None:
        return ordered.finish()
    if not digest_done.is_set():  # pragma: no cover - run() waited for it
        raise ConversionError(f"{label}: digest did not finish")
    return digest


def copy_levels(
    regions: RegionExecutor,
    progress: Progress,
    plan: VolumePlan,
    writer: OmeZarrWriter,
    reader: Any,
    journal: TileJournal,
) -> StreamingDigest:
    """Copy the archive's own pyramid; level 0 is digested band by band while the copy
    goes on (from the written store when the source is remote, else from the source)."""
    label, levels, budget = plan.label, plan.levels, plan.budget
    dtype = np.dtype(plan.dtype)
    itemsize = dtype.itemsize
    block = writer.write_block
    if reader.digest_from_store:
        read0: Callable[[Region], np.ndarray] = lambda band: writer.read(0, band)  # noqa: E731
    else:
        read0 = lambda band: reader.read_level(0, band)  # noqa: E731
    tile0 = choose_tile(levels[0].shape, block, itemsize, budget)
    ordered = OrderedDigest(
        StreamingDigest(dtype), levels[0].shape, tile0, block, budget, itemsize, read0
    )

    def done(task: RegionTask, nbytes: int) -> None:
        journal.mark_done(task.level, task.idx)
        progress.advance(label, nbytes)
        if task.level == 0:
            ordered.tile_done(task.idx[0])

    tasks: list[RegionTask] = []
    for lv, level in enumerate(levels):
        tile = tile0 if lv == 0 else choose_tile(level.shape, block, itemsize, budget)
        for idx, region in iter_tiles(level.shape, tile):
            if journal.is_done(lv, idx):
                progress.advance(label, region_nbytes(region, itemsize))
                continue
            if lv == 0:
                ordered.expect(idx[0])
            tasks.append(RegionTask("copy", lv, idx, region))
    regions.run(VolumeContext(plan, reader, writer), tasks, done)
    return ordered.finish()
