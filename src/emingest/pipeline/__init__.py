"""The pipeline: plan each volume into region tasks and fan them out on one executor.

For each volume: describe -> stub record -> open -> level-0 tiles (each also writes its level-1
block from memory) -> higher levels from the level below -> digest -> complete record.
Tiles are chunk-aligned and sized by ``pipeline.tile_bytes``, so peak memory is about
``workers x tile_bytes x 3`` whatever the volume's size. A journal of finished tiles makes a
killed run resumable; the digest (sha256 + statistics) streams over the volume in C order in
its own task, in bounded bands, or, for remote sources and Dask, over the written level 0 as
its bands complete (``digest.OrderedDigest``), so no voxel crosses the network twice.

The package: this module holds the volume and record phases; ``levels`` plans and runs the
level writing and copying; ``tasks`` the self-contained region tasks (and downsampling of
levels above 1); ``digest`` the level-0 digest; ``executors`` threads or Dask.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emingest.catalog import index_record
from emingest.config import Settings
from emingest.dask_cluster import DaskClient
from emingest.diskspace import (
    failure_message,
    storage_cause,
    warn_if_short_of_space,
    write_record_in_place,
)
from emingest.errors import (
    ConfigError,
    ConversionError,
    DataRootError,
    EmingestError,
    RunInterrupted,
)
from emingest.fingerprints import check_source, download_fingerprint_path
from emingest.journal import TileJournal
from emingest.layout import VolumePaths, safe_component
from emingest.leases import held_lease, lease_key
from emingest.locks import held, volume_lock_path
from emingest.memory import limit_malloc_arenas
from emingest.omezarr.metadata import plan_levels
from emingest.omezarr.writer import remove_store, store_size_bytes
from emingest.pipeline.executors import region_executor
from emingest.pipeline.levels import copy_levels, write_levels
from emingest.pipeline.tasks import (
    ReaderSpec,
    VolumePlan,
    WriterSpec,
)
from emingest.progress import NullProgress, Progress
from emingest.records import (
    STATUS_COMPLETE,
    STATUS_SAVING,
    FileDigest,
    LocalPaths,
    ScaleLevel,
    VolumeRecord,
    error_status,
    read_record,
    utc_now,
    write_record,
)
from emingest.sources.base import Source, VolumeInfo, VolumeReader, VolumeRef
from emingest.storage import Location, S3Root
from emingest.voxel_size import checked_voxel_size, plausible_voxel_size

log = logging.getLogger(__name__)


@dataclass
class VolumeJob:
    source: Source
    ref: VolumeRef
    voxel_size_nm: tuple[float, float, float] | None = None
    """Overrides the source's voxel size (``--voxel-size-nm``)."""
    labels_of: VolumeRef | None = None
    """Makes this volume an OME-NGFF labels image of that one (e.g. ground-truth masks)."""

    def __post_init__(self) -> None:
        self.voxel_size_nm = checked_voxel_size(self.voxel_size_nm, "voxel_size_nm override")


STATUS_INTERRUPTED = "interrupted"


@dataclass
class VolumeResult:
    ref: VolumeRef
    status: str
    record_path: Path | str
    """The record's file, or its ``s3://`` URL on an S3 data root."""
    record: VolumeRecord | None = None
    seconds: float = 0.0
    error: BaseException | None = field(default=None, repr=False)
    note: str = ""
    """Why a complete volume was ingested again (its source changed), for the user."""

    @property
    def ok(self) -> bool:
        return self.status in (STATUS_COMPLETE, "skipped")


class Pipeline:
    """Ingests volumes; one instance per run. ``executor`` defaults to a thread pool of
    ``settings.pipeline.workers`` (any ``concurrent.futures.Executor`` whose tasks run in this
    process works: tasks share the journal, the writer and progress)."""

    def __init__(
        self,
        settings: Settings,
        *,
        progress: Progress | None = None,
        executor: Executor | None = None,
        stop: threading.Event | None = None,
        dask: DaskClient | None = None,
    ) -> None:
        limit_malloc_arenas()  # RSS follows the tiles, not the run's length (emingest.memory)
        # Set (Ctrl-C) to stop: region tasks not started yet end at once, volumes not started
        # are not begun, and records stay resumable ("saving-data" plus the tile journal).
        self.stop = stop or threading.Event()
        self.settings = settings
        self.progress = progress or NullProgress()
        # ``executor`` (a concurrent.futures one) wins; else ``pipeline.executor`` says: a
        # thread pool of ``pipeline.workers``, or a Dask cluster.
        # ``dask``: a client the caller keeps open for later work (``emingest run`` embeds on
        # the same cluster), instead of one started and closed here.
        self.regions = region_executor(settings.pipeline, executor, self.stop, dask)

    def close(self) -> None:
        self.regions.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- many volumes -----------------------------------------------------------------------

    def run(self, jobs: Sequence[VolumeJob], *, force: bool = False) -> list[VolumeResult]:
        """Ingest every job, ``pipeline.concurrent_volumes`` at a time; one failure never stops
        the others. Results come back in the order of ``jobs``."""
        n = max(1, min(self.settings.pipeline.concurrent_volumes, len(jobs)))
        with ThreadPoolExecutor(n, thread_name_prefix="emingest-volume") as volumes:
            futures = [volumes.submit(self.ingest, job, force=force) for job in jobs]
            return [f.result() for f in futures]

    # -- one volume -------------------------------------------------------------------------

    def ingest(self, job: VolumeJob, *, force: bool = False) -> VolumeResult:
        """One volume, under its lock: a second run of it waits, then finds it complete."""
        st = self.settings.storage
        root = st.root()
        paths = VolumePaths.for_ref(root, job.ref, job.labels_of)
        # locks are of this machine: under the local data root, or the work_dir of a bucket
        lock = volume_lock_path(st.local_root, st.local_root / paths.record.key)
        what = f"{job.ref.source}/{job.ref.source_id}/{job.ref.name}"
        with held(lock, what=what):
            if not isinstance(root, S3Root):
                return self._ingest(job, paths, force=force)
            # a bucket is shared by machines that share no flock: a lease object too
            try:
                lease = held_lease(
                    root,
                    lease_key(paths.record.key),
                    what=what,
                    ttl_s=st.s3_lease_ttl_s,
                    stop=self.stop,
                )
                with lease:
                    return self._ingest(job, paths, force=force)
            except RunInterrupted:
                return VolumeResult(job.ref, STATUS_INTERRUPTED, _shown(paths.record))
            except DataRootError as err:
                status = error_status(str(err))
                log.error("%s: %s", what, status)
                return VolumeResult(job.ref, status, _shown(paths.record), error=err)

    def _ingest(self, job: VolumeJob, paths: VolumePaths, *, force: bool = False) -> VolumeResult:
        ref = job.ref
        label = f"{ref.source}/{ref.source_id}/{ref.name}"
        if self.stop.is_set():
            return VolumeResult(ref, STATUS_INTERRUPTED, _shown(paths.record))
        t0 = time.monotonic()
        record: VolumeRecord | None = None
        known: VolumeInfo | None = None
        note = ""
        try:
            # inside the try: an unreachable bucket fails this volume, not the run
            if not force and paths.record.exists() and (paths.store / "zarr.json").exists():
                try:
                    existing = read_record(paths.record)
                except ConversionError:
                    existing = None
                if existing is not None and existing.is_complete:
                    check = check_source(job.source, ref, existing.source_fingerprint)
                    if check.unchanged:
                        log.info("%s: already complete, skipped (use --force to redo)", label)
                        return VolumeResult(ref, "skipped", _shown(paths.record), existing)
                    log.warning("%s: %s; ingesting it again", label, check.change)
                    known, note = check.info, check.change
            if self.regions.remote:
                _check_openable_by_name(ref, label)
            info = known or job.source.describe(ref)
            voxel = job.voxel_size_nm or plausible_voxel_size(info.voxel_size_nm)
            origin = "user (--voxel-size-nm)" if job.voxel_size_nm else info.voxel_size_origin
            if voxel is None:
                origin = ""  # an archive's 0, NaN or inf is no voxel size either
                log.warning("%s: no voxel size in the source; recorded as null", label)
            record = VolumeRecord(
                status=STATUS_SAVING,
                source=ref.source,
                source_id=ref.source_id,
                name=ref.name,
                description=info.description,
                download_url=info.download_url,
                local_paths=LocalPaths.of_volume(paths.store, paths.record),
                timestamp=utc_now(),
                voxel_size_nm=list(voxel) if voxel else None,
                voxel_size_origin=origin,
                additional_metadata=info.additional_metadata,
                source_fingerprint=info.fingerprint or None,
            )
            record.additional_metadata.update(_labels_note(job.labels_of))
            self._save(paths, record)  # phase 1: before any voxel is written
            if paths.folder.is_local:
                warn_if_short_of_space(paths.folder.path, info.nbytes, label)
            reader = job.source.open(ref)
            try:
                _check_reader(reader, info, label)
                self._write_volume(
                    label,
                    paths,
                    info,
                    reader,
                    voxel,
                    record,
                    force=force,
                    is_label=job.labels_of is not None,
                )
            finally:
                reader.close()
            # Sources may learn more while reading (member calibrations, listing gaps).
            record.additional_metadata = {**info.additional_metadata, **_labels_note(job.labels_of)}
            if not self.settings.storage.keep_raw:
                _drop_raw(info.raw_paths)
            raw = [p for p in info.raw_paths if p.exists()]
            record.local_paths = LocalPaths.of_volume(paths.store, paths.record, raw)
            record.files = [FileDigest.model_validate(f) for f in info.files]
            record.ingest_seconds = round(time.monotonic() - t0, 3)
            record.status = STATUS_COMPLETE
            record.timestamp = utc_now()
            self._save(paths, record)  # phase 2
            paths.journal.unlink()
            rate = (record.nbytes or 0) / max(record.ingest_seconds, 1e-9) / 1e6
            log.info("%s: complete, shape %s, %.1f MB/s", label, record.volume_shape, rate)
            self.progress.finish(label, STATUS_COMPLETE)
            return VolumeResult(
                ref, STATUS_COMPLETE, _shown(paths.record), record, time.monotonic() - t0, note=note
            )
        except RunInterrupted:
            log.warning("%s: interrupted; the same command resumes it", label)
            self.progress.finish(label, STATUS_INTERRUPTED)
            return VolumeResult(ref, STATUS_INTERRUPTED, _shown(paths.record), record)
        except Exception as err:
            status = error_status(failure_message(err))  # a full disk: "no space left ..."
            if not isinstance(err, EmingestError | OSError):
                log.exception("%s: unexpected failure (a bug? please report it)", label)
            else:
                log.error("%s: %s", label, status)
            self.progress.finish(label, "error")
            saved = _write_error_record(paths, ref, record, status)
            if saved is not None:
                index_record(self.settings, _shown(paths.record), saved)
            return VolumeResult(
                ref, status, _shown(paths.record), record, time.monotonic() - t0, err
            )

    def _save(self, paths: VolumePaths, record: VolumeRecord) -> None:
        """Write the sidecar (the source of truth), then index it in the catalog."""
        write_record(paths.record, record)
        index_record(self.settings, _shown(paths.record), record)

    def _write_volume(
        self,
        label: str,
        paths: VolumePaths,
        info: VolumeInfo,
        reader: VolumeReader,
        voxel: Sequence[float] | None,
        record: VolumeRecord,
        *,
        force: bool,
        is_label: bool = False,
    ) -> None:
        st = self.settings.storage
        budget = self.settings.pipeline.tile_bytes
        dtype = np.dtype(info.dtype).newbyteorder("=")
        if info.levels:
            levels = list(info.levels)
            method = "copied"
        else:
            levels = plan_levels(info.shape, st.chunk_shape, voxel, max_levels=st.max_levels)
            method = "mode" if is_label else "mean"
        writer_spec = WriterSpec(
            path=paths.store,
            name=info.ref.name,
            levels=tuple(levels),
            dtype=dtype.str,
            chunk_shape=st.chunk_shape,
            shard_shape=st.shard_shape,
            zstd_level=st.zstd_level,
            method=method,
            label=is_label,
            unit="nanometer" if voxel else None,  # unknown size: unitless axes, scale 1.0
        )
        writer = writer_spec.open()
        journal_plan = {
            "shape": list(info.shape),
            "dtype": dtype.str,
            "chunks": list(st.chunk_shape),
            "shards": list(st.shard_shape) if st.shard_shape else None,
            "levels": len(levels),
            "factors": [list(lv.factor) for lv in levels],
            "zstd": st.zstd_level,
            "tile_bytes": budget,
            "source": info.fingerprint,  # a changed source never resumes old tiles
        }
        journal = TileJournal(
            paths.journal, journal_plan, checkpoint_s=self.settings.pipeline.journal_checkpoint_s
        )
        plan = VolumePlan(
            # new per ingest: a worker never reuses a reader opened on an older file
            key=f"{paths.store}:{uuid.uuid4().hex}",
            label=label,
            reader=ReaderSpec(info.ref.source, self.settings, info.ref),
            writer=writer_spec,
            levels=tuple(levels),
            dtype=dtype.str,
            budget=budget,
            is_label=is_label,
        )
        resuming = not force and (paths.store / "zarr.json").exists() and journal.load()
        if not resuming:
            remove_store(paths.store)
            journal.start_fresh()
        else:
            log.info("%s: resuming, %d level-0 tiles already written", label, journal.count(0))
        writer.create()
        total = sum(int(np.prod(lv.shape)) * dtype.itemsize for lv in levels)
        self.progress.start(label, label, total)
        try:
            if info.levels:
                digest = copy_levels(self.regions, self.progress, plan, writer, reader, journal)
            else:
                digest = write_levels(self.regions, self.progress, plan, writer, reader, journal)
        finally:
            journal.close()
        stats = digest.result()
        record.volume_shape = list(info.shape)
        record.dtype = dtype.name
        record.chunk_shape = list(st.chunk_shape)
        record.shard_shape = list(st.shard_shape) if st.shard_shape else None
        record.scales = [
            ScaleLevel(
                path=lv.path,
                shape=list(lv.shape),
                voxel_size_nm=list(lv.voxel_size_nm) if voxel else None,
                translation_nm=list(lv.translation_nm) if voxel else None,
            )
            for lv in levels
        ]
        record.sha256 = digest.sha256
        record.nbytes = info.nbytes
        record.file_size_bytes = store_size_bytes(paths.store)
        record.statistics = stats


def _shown(location: Location) -> Path | str:
    """A location as the user knows it: a path on this machine, else its URL."""
    return location.path if location.is_local else location.url


def _drop_raw(paths: Sequence[Path]) -> None:
    """``--no-keep-raw``: remove downloaded originals once their volume is complete (a failed
    volume keeps them, so a re-run resumes instead of downloading again)."""
    from emingest.transports.download import done_marker

    for p in paths:
        Path(p).unlink(missing_ok=True)
        done_marker(Path(p)).unlink(missing_ok=True)
        download_fingerprint_path(Path(p)).unlink(missing_ok=True)


def jobs_for(source: Source, refs: Sequence[VolumeRef], **kw: Any) -> list[VolumeJob]:
    """Jobs for ``refs``; a source's ``labels_target(ref)`` makes a ref a labels image of
    another volume, and images are queued before their labels."""
    jobs = [VolumeJob(source, ref, labels_of=source.labels_target(ref), **kw) for ref in refs]
    return sorted(jobs, key=lambda j: j.labels_of is not None)


def _labels_note(labels_of: VolumeRef | None) -> dict[str, str]:
    return {} if labels_of is None else {"labels_of": f"{labels_of.source_id}/{labels_of.name}"}


def _check_openable_by_name(ref: VolumeRef, label: str) -> None:
    """Dask workers open the source from its registry name (``ReaderSpec``): fail the volume
    up front, not in every task, when the name is not registered."""
    from emingest.sources import get_source_class

    try:
        get_source_class(ref.source)
    except ConfigError as err:
        raise ConfigError(f"{label}: Dask workers open sources by registry name: {err}") from err


def _check_reader(reader: VolumeReader, info: VolumeInfo, label: str) -> None:
    if tuple(reader.shape) != tuple(info.shape):
        raise ConversionError(f"{label}: reader shape {reader.shape} != described {info.shape}")
    if np.dtype(reader.dtype) != np.dtype(info.dtype):
        raise ConversionError(f"{label}: reader dtype {reader.dtype} != described {info.dtype}")


def _write_error_record(
    paths: VolumePaths,
    ref: VolumeRef,
    record: VolumeRecord | None,
    status: str,
) -> VolumeRecord | None:
    """Mark the volume failed; a record is started here if describe itself failed."""
    if record is None:
        record = VolumeRecord(
            status=status,
            source=ref.source,
            source_id=ref.source_id,
            name=ref.name,
            local_paths=LocalPaths.of_volume(paths.store, paths.record),
            timestamp=utc_now(),
            voxel_size_nm=None,
            download_url=ref.locator,
        )
    record.status = status
    record.timestamp = utc_now()
    try:
        write_record(paths.record, record)
    except OSError as err:
        if (
            paths.record.is_local
            and storage_cause(err) is not None
            and write_record_in_place(paths.record.path, record)
        ):
            log.warning("%s: disk full; the error record was written in place", paths.record)
            return record
        log.error("%s: this record could not be updated (%s): %s", paths.record, status, err)
        return None
    return record


__all__ = [
    "Pipeline",
    "VolumeJob",
    "VolumePaths",
    "VolumeResult",
    "jobs_for",
    "safe_component",
]
