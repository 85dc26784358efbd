"""Self-contained region tasks: one region of one level of one volume, and what it needs.

A task carries its region and the :class:`VolumePlan` (reader and writer specs, levels,
dtype, budget), so it runs the same in a thread of this process, with the driver's open
reader and writer (:class:`VolumeContext`), or in a Dask worker process, which opens its own
(:func:`run_in_worker`). It returns the bytes it wrote; the driver keeps the journal, the
digest order and progress.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emingest.config import Settings
from emingest.errors import ConversionError
from emingest.omezarr.metadata import Level
from emingest.omezarr.pyramid import downsample_mean, downsample_mode
from emingest.omezarr.writer import OmeZarrWriter
from emingest.regions import coarser_region, finer_region, format_region
from emingest.sources.base import Region, VolumeReader, VolumeRef
from emingest.storage import Location

Downsample = Callable[[np.ndarray, Sequence[int]], np.ndarray]
"""A pyramid step: (block, per-axis factor) -> the block one level coarser."""


@dataclass(frozen=True)
class ReaderSpec:
    """How a worker opens the source reader itself: the source's registry name, the run's
    settings and the volume's ref (refs carry all that ``open`` needs)."""

    source: str
    settings: Settings
    ref: VolumeRef

    def open(self) -> VolumeReader:
        from emingest.sources import create_source

        return create_source(self.source, self.settings).open(self.ref)


@dataclass(frozen=True)
class WriterSpec:
    """How a worker opens the output store (its arrays exist: the driver created them)."""

    path: Location
    """The store below its data root (a folder or an S3 prefix): picklable, so a Dask
    worker writes where the driver planned."""
    name: str
    levels: tuple[Level, ...]
    dtype: str
    chunk_shape: tuple[int, int, int]
    shard_shape: tuple[int, int, int] | None
    zstd_level: int
    method: str
    label: bool
    unit: str | None = "nanometer"
    """None when the voxel size is unknown: the NGFF axes then carry no unit."""

    def open(self) -> OmeZarrWriter:
        return OmeZarrWriter(
            self.path,
            name=self.name,
            levels=self.levels,
            dtype=np.dtype(self.dtype),
            chunk_shape=self.chunk_shape,
            shard_shape=self.shard_shape,
            zstd_level=self.zstd_level,
            method=self.method,
            label=self.label,
            unit=self.unit,
        )


@dataclass(frozen=True)
class VolumePlan:
    """Everything every region task of one volume needs, whatever process runs it."""

    key: str
    """Unique per ingest of a volume: what a worker caches its open reader and store under."""
    label: str
    reader: ReaderSpec | None
    writer: WriterSpec
    levels: tuple[Level, ...]
    dtype: str
    budget: int
    is_label: bool

    @property
    def downsample(self) -> Downsample:
        return downsample_mode if self.is_label else downsample_mean


@dataclass(frozen=True)
class RegionTask:
    """One tile: ``kind`` is "level0" (read the source, write s0 and, when ``inline``, the
    matching s1 block from memory), "level" (downsample the level below) or "copy" (copy
    the archive's own level)."""

    kind: str
    level: int
    idx: tuple[int, ...]
    region: Region
    inline: bool = False


class VolumeContext:
    """The open reader and writer region tasks of one volume use in one process."""

    def __init__(
        self,
        plan: VolumePlan,
        reader: VolumeReader | None,
        writer: OmeZarrWriter,
        read: Callable[[Region], np.ndarray] | None = None,
    ) -> None:
        self.plan = plan
        self.reader = reader
        self.writer = writer
        self.read = read or (reader.read if reader is not None else _no_reader)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _no_reader(region: Region) -> np.ndarray:  # pragma: no cover - plans always carry one
    raise ConversionError("this volume's tasks have no source reader")


def run_region(task: RegionTask, ctx: VolumeContext) -> int:
    """Do one task; returns the bytes written (for progress)."""
    plan, writer = ctx.plan, ctx.writer
    levels = plan.levels
    if task.kind == "level0":
        data = ctx.read(task.region)
        if data.shape != tuple(s.stop - s.start for s in task.region):
            raise ConversionError(
                f"{plan.label}: reader returned {data.shape} for region "
                f"{format_region(task.region)}"
            )
        writer.write(0, task.region, data)
        done = int(data.nbytes)
        if task.inline:
            factor = levels[1].factor
            half = plan.downsample(data, factor)
            writer.write(1, coarser_region(task.region, levels[1].shape, factor), half)
            done += int(half.nbytes)
        return done
    if task.kind == "level":
        out = downsampled(writer, task.level, task.region, levels, plan)
        writer.write(task.level, task.region, out)
        return int(out.nbytes)
    if task.kind == "copy":
        data = ctx.reader.read_level(task.level, task.region)  # type: ignore[union-attr]
        writer.write(task.level, task.region, data)
        return int(data.nbytes)
    raise ValueError(f"unknown region task kind {task.kind!r}")


def downsampled(
    writer: OmeZarrWriter, lv: int, region: Region, levels: Sequence[Level], plan: VolumePlan
) -> np.ndarray:
    """Level ``lv``'s ``region`` from the level below, read in z-slabs of at most
    ``budget`` bytes. A region is at least one write block (a whole shard when sharded),
    and its footprint below is up to 8 times that: read at once, 256^3 shards of uint8
    cost 1.5 GiB RSS at 3 workers. Slabs start on multiples of the z factor, so the
    result is the same."""
    dtype = np.dtype(plan.dtype)
    factor = levels[lv].factor
    fz = factor[0]
    src = finer_region(region, levels[lv - 1].shape, factor)
    plane = (src[1].stop - src[1].start) * (src[2].stop - src[2].start) * dtype.itemsize
    step = max(fz, plan.budget // max(plane, 1) // fz * fz)
    if src[0].stop - src[0].start <= step:
        return plan.downsample(writer.read(lv - 1, src), factor)
    out = np.empty(tuple(r.stop - r.start for r in region), dtype)
    for z0 in range(src[0].start, src[0].stop, step):
        slab = (slice(z0, min(z0 + step, src[0].stop)), src[1], src[2])
        half = plan.downsample(writer.read(lv - 1, slab), factor)
        first = (z0 - src[0].start) // fz
        out[first : first + half.shape[0]] = half
    return out


# -- in a worker process ----------------------------------------------------------------------

_WORKER_CONTEXTS = 4
"""Volumes a worker process keeps open at once (``concurrent_volumes`` is usually 2)."""

_contexts: OrderedDict[str, VolumeContext] = OrderedDict()
_contexts_lock = threading.Lock()


def run_in_worker(plan: VolumePlan, task: RegionTask) -> int:
    """The Dask entry point: open (or reuse) this volume's reader and store in this worker
    process, then run the task. Tasks are idempotent (a tile rewrites the same chunks), so a
    task retried after its worker died gives the same output."""
    with _contexts_lock:
        ctx = _contexts.get(plan.key)
        if ctx is not None:
            _contexts.move_to_end(plan.key)
    if ctx is None:
        from emingest.pipeline.digest import ReusedBuffers

        reader = plan.reader.open() if plan.reader is not None else None
        # reused read buffers, as on threads: a fresh buffer's first touch is slow here
        read = ReusedBuffers(reader, np.dtype(plan.dtype)).read if reader is not None else None
        ctx = VolumeContext(plan, reader, plan.writer.open(), read)
        with _contexts_lock:
            _contexts[plan.key] = ctx
            while len(_contexts) > _WORKER_CONTEXTS:
                _, old = _contexts.popitem(last=False)
                old.close()
    return run_region(task, ctx)


def trivial_task(x: Any) -> Any:
    """A task that does nothing: ``benchmarks/dask_executor.py`` measures the scheduler with it."""
    return x
