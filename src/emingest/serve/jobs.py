"""Ingest jobs run by the server: the CLI's pipeline (``create_source`` -> ``discover`` ->
``jobs_for`` -> ``Pipeline``) on a worker pool, with progress, cancellation and a journal.

A job lives in the server, not in the request that started it, so a client may disconnect.
Each job is saved as ``<local root>/.jobs/<id>.json`` (the data root, or ``storage.work_dir``
when the data root is on S3) whenever its state changes; after a
restart those files list past jobs, a job that was running is marked ``interrupted`` and each
volume's status is read again from its record (the record is the truth). Cancelling makes the
running volume's next tile fail with :class:`JobCancelledError`: its journal stays, so the same
job submitted again resumes it where it stopped.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from emingest.catalog import open_catalog
from emingest.config import Settings
from emingest.errors import ConfigError, EmingestError, EntryNotFoundError, JobCancelledError
from emingest.records import STATUS_COMPLETE, utc_now
from emingest.sources.base import Source

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
"""Job states that can still change; everything else is final."""


@dataclass
class VolumeState:
    id: str
    status: str = "queued"
    bytes_done: int = 0
    bytes_total: int = 0
    error: str | None = None


@dataclass
class JobRequest:
    """What ``POST /api/jobs`` asks: as ``emingest ingest SOURCE IDS... [options]``."""

    source: str
    ids: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the source's ``discover`` (as the CLI's flags)."""
    source_settings: dict[str, Any] = field(default_factory=dict)
    """Keys of ``[sources.<source>]`` for this job (endpoints, credentials-free options)."""
    voxel_size_nm: list[float] | None = None
    force: bool = False
    embed: bool = False


@dataclass
class Job:
    id: str
    request: JobRequest
    status: str = "queued"
    created: str = field(default_factory=utc_now)
    started: str | None = None
    finished: str | None = None
    errors: list[str] = field(default_factory=list)
    volumes: dict[str, VolumeState] = field(default_factory=dict)
    t_start: float | None = field(default=None, repr=False)
    t_end: float | None = field(default=None, repr=False)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            volumes = [asdict(v) for v in self.volumes.values()]
        done = sum(v["bytes_done"] for v in volumes)
        total = sum(v["bytes_total"] for v in volumes)
        elapsed = None
        if self.t_start is not None:
            elapsed = (self.t_end or time.monotonic()) - self.t_start
        rate = done / elapsed if elapsed and elapsed > 0 else None
        eta = None
        if self.status == "running" and rate and total >= done:
            eta = (total - done) / rate
        return {
            "id": self.id,
            "status": self.status,
            "source": self.request.source,
            "ids": self.request.ids,
            "options": self.request.options,
            "force": self.request.force,
            "embed": self.request.embed,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "bytes_done": done,
            "bytes_total": total,
            "rate_bytes_per_s": round(rate, 1) if rate is not None else None,
            "eta_s": round(eta, 1) if eta is not None else None,
            "elapsed_s": round(elapsed, 3) if elapsed is not None else None,
            "volumes": volumes,
            "errors": list(self.errors),
            "url": f"/api/jobs/{self.id}",
        }


class _JobProgress:
    """The pipeline's progress interface, feeding a job; raises once the job is cancelled."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def _check(self) -> None:
        if self.job.cancel.is_set():
            raise JobCancelledError(
                f"job {self.job.id} cancelled; submit it again to resume where it stopped"
            )

    def start(self, key: str, label: str, total_bytes: int) -> None:
        self._check()
        with self.job.lock:
            v = self.job.volumes.setdefault(key, VolumeState(key))
            v.status, v.bytes_total, v.bytes_done = "running", total_bytes, 0

    def advance(self, key: str, nbytes: int) -> None:
        with self.job.lock:
            v = self.job.volumes.get(key)
            if v is not None:
                v.bytes_done += nbytes
        self._check()

    def finish(self, key: str, status: str) -> None:
        pass  # the job loop records the volume's final status from the pipeline's result


class JobManager:
    """Runs jobs ``serve.job_workers`` at a time and keeps their journal."""

    def __init__(self, settings: Settings, *, start: bool = True) -> None:
        self.settings = settings
        self.folder = settings.storage.local_root / ".jobs"
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            settings.serve.job_workers, thread_name_prefix="emingest-job"
        )
        self._accepting = start
        self._load_past()

    # -- public ---------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> Job:
        if not self._accepting:
            raise ConfigError("this server does not run jobs")
        from emingest.sources import create_source

        _close(create_source(request.source, self._settings_for(request)))  # unknown name: 400
        job = Job(id=f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}", request=request)
        with self._lock:
            self._jobs[job.id] = job
        self._save(job)
        self._pool.submit(self._run, job)
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.id, reverse=True)

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise EntryNotFoundError(f"no job {job_id!r}; GET /api/jobs lists them")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status in ACTIVE:
            job.cancel.set()
            if job.status == "queued":
                self._finish(job, "cancelled")
        return job

    def shutdown(self) -> None:
        """Cancel what runs (volumes stay resumable) and wait for the workers."""
        for job in self.all():
            if job.status in ACTIVE:
                job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- running --------------------------------------------------------------------------

    def _settings_for(self, request: JobRequest) -> Settings:
        if not request.source_settings:
            return self.settings
        section = {**self.settings.source_section(request.source), **request.source_settings}
        sources = {**self.settings.sources, request.source: section}
        return self.settings.model_copy(update={"sources": sources})

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            return
        from emingest.pipeline import Pipeline, jobs_for
        from emingest.sources import create_source

        job.status, job.started, job.t_start = "running", utc_now(), time.monotonic()
        self._save(job)
        req = job.request
        source: Any = None
        try:
            settings = self._settings_for(req)
            source = create_source(req.source, settings)
            refs = source.discover(req.ids, **req.options)
            vox = tuple(req.voxel_size_nm) if req.voxel_size_nm else None
            volume_jobs = jobs_for(source, refs, voxel_size_nm=vox)
            with job.lock:
                for vj in volume_jobs:
                    key = f"{vj.ref.source}/{vj.ref.source_id}/{vj.ref.name}"
                    job.volumes[key] = VolumeState(key)
            self._save(job)
            with Pipeline(settings, progress=_JobProgress(job)) as pipe:
                for vj, state in zip(volume_jobs, list(job.volumes.values()), strict=True):
                    if job.cancel.is_set():
                        state.status = "cancelled"
                        continue
                    state.status = "running"
                    result = pipe.ingest(vj, force=req.force)
                    state.status = result.status
                    if isinstance(result.error, JobCancelledError):
                        state.status = "cancelled (resumable)"
                    elif not result.ok:
                        state.error = result.status
                        job.errors.append(f"{state.id}: {result.status}")
                    self._save(job)
            if req.embed and not job.cancel.is_set():
                self._embed(job, [v.id for v in job.volumes.values() if v.status != "error"])
        except EmingestError as err:
            job.errors.append(f"{type(err).__name__}: {err}")
        except Exception as err:  # a bug must not kill the worker thread silently
            log.exception("job %s failed", job.id)
            job.errors.append(f"internal error: {type(err).__name__}: {err}")
        finally:
            _close(source)
        if job.cancel.is_set():
            self._finish(job, "cancelled")
        else:
            self._finish(job, "failed" if job.errors else "complete")

    def _embed(self, job: Job, record_ids: list[str]) -> None:
        try:
            from emingest.vectors import embed_records
        except ImportError as err:
            job.errors.append(f"embedding is not available in this installation: {err}")
            return
        embed_records(self.settings, record_ids)

    def _finish(self, job: Job, status: str) -> None:
        job.status, job.finished = status, utc_now()
        job.t_end = time.monotonic()
        self._save(job)

    # -- the journal ----------------------------------------------------------------------

    def _save(self, job: Job) -> None:
        from emingest.serve.catalog_api import atomic_write_bytes

        body = {**job.to_dict(), "request": asdict(job.request)}
        try:
            atomic_write_bytes(self.folder / f"{job.id}.json", json.dumps(body, indent=1).encode())
        except OSError as err:
            log.warning("job %s: cannot save its state: %s", job.id, err)

    def _load_past(self) -> None:
        if not self.folder.is_dir():
            return
        statuses: dict[str, str] = {}
        try:
            with open_catalog(self.settings) as cat:
                statuses = {row.id: row.status for row in cat.query()}
        except EmingestError as err:
            log.warning("past jobs: cannot read the catalog: %s", err)
        for path in sorted(self.folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                job = Job(id=data["id"], request=JobRequest(**data["request"]))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("%s: not a job file: %s", path, err)
                continue
            job.status = data.get("status", "interrupted")
            if job.status in ACTIVE:
                job.status = "interrupted"
            job.created, job.started = data.get("created", job.created), data.get("started")
            job.finished = data.get("finished")
            job.errors = list(data.get("errors", []))
            for v in data.get("volumes", []):
                state = VolumeState(**v)
                recorded = statuses.get(state.id)
                if recorded is not None:
                    state.status = recorded
                    if recorded == STATUS_COMPLETE:
                        state.bytes_done = state.bytes_total
                job.volumes[state.id] = state
            self._jobs[job.id] = job


def _close(source: Source) -> None:
    source.close()  # the contract's default does nothing
