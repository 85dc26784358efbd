"""``emingest run``: every configured dataset, concurrently, after a preflight of each archive.

What users of the earlier pipeline ran every day (all loaders in parallel, a log per loader,
then a consolidation), done with one shared worker budget: the datasets' volumes all go into one
:class:`~emingest.pipeline.Pipeline`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emingest.config import DatasetSettings, Settings
from emingest.dask_cluster import DaskClient
from emingest.diskspace import run_space_warnings
from emingest.errors import EmingestError
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult, jobs_for
from emingest.progress import Progress
from emingest.records import error_status
from emingest.sources import create_source, default_datasets, get_source_class
from emingest.sources.base import Preflight, Source, VolumeRef, options_for, source_settings
from emingest.storage import DataRoot

log = logging.getLogger(__name__)


def resolve_datasets(settings: Settings) -> list[DatasetSettings]:
    """The configured ``[[datasets]]``, or every source's default datasets when none are."""
    if settings.datasets is not None:
        return list(settings.datasets)
    return default_datasets()


def configuration_problems(settings: Settings) -> list[str]:
    """What is wrong with the sources' sections and the datasets, without reaching any archive:
    unknown sources, invalid ``[sources.<name>]`` sections, options a source does not take."""
    problems: list[str] = []
    datasets = resolve_datasets(settings)
    for name in sorted(set(settings.sources) | {d.source for d in datasets}):
        try:
            source_settings(settings, name, get_source_class(name).settings_model)
        except EmingestError as err:
            problems.append(str(err))
    for d in datasets:
        try:
            options_for(get_source_class(d.source), d.options)
        except EmingestError as err:
            problems.append(f"dataset {d.name!r}: {err}")
    return problems


def preflight_source(source: str, settings: Settings, *, timeout_s: float) -> Preflight:
    """Ask the source to reach its archive once; never raises (a source that cannot even be
    created fails its preflight with the reason)."""
    try:
        created = create_source(source, settings)
    except EmingestError as err:
        return Preflight(source, "-", False, f"{type(err).__name__}: {err}", 0.0)
    try:
        return created.preflight(timeout_s=timeout_s)
    finally:
        created.close()


@dataclass
class DatasetOutcome:
    dataset: DatasetSettings
    results: list[VolumeResult]
    error: str | None = None


class _SourceLogFilter(logging.Filter):
    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(f"emingest.sources.{self.source}"):
            return True
        return str(record.getMessage()).startswith(f"{self.source}/")


def per_source_logs(log_dir: Path, sources: Sequence[str], stamp: str) -> list[logging.Handler]:
    """One log file per source (``logs/<source>_<stamp>.log``), added to the root logger."""
    handlers: list[logging.Handler] = []
    for source in sorted(set(sources)):
        h = logging.FileHandler(log_dir / f"{source}_{stamp}.log", encoding="utf-8")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        h.addFilter(_SourceLogFilter(source))
        logging.getLogger().addHandler(h)
        handlers.append(h)
    return handlers


def data_root_problem(root: DataRoot) -> str | None:
    """Write, read back and delete a small object at the data root; None when all worked,
    else what failed (wrong endpoint, credentials, bucket or permissions)."""
    probe = root.location(f".emingest-preflight-{uuid.uuid4().hex}")
    try:
        probe.write_bytes(b"ok")
        if probe.read_bytes() != b"ok":
            return f"{probe.url} read back other bytes than were written"
        probe.unlink()
    except (EmingestError, OSError) as err:
        return str(err)
    return None


def run_datasets(
    settings: Settings,
    datasets: Sequence[DatasetSettings],
    *,
    progress: Progress | None = None,
    force: bool = False,
    preflight_timeout_s: float = 5.0,
    report_line: Any = print,
    stop: threading.Event | None = None,
) -> list[DatasetOutcome]:
    """Preflight each archive, discover every dataset, then ingest all volumes together."""
    sources = sorted({d.source for d in datasets})
    # Sources are imported here, in one thread: concurrent first imports can see half-made
    # modules. Only the probes run in parallel.
    for s in sources:
        with contextlib.suppress(EmingestError):  # its preflight says why
            get_source_class(s)
    with ThreadPoolExecutor(max(1, len(sources))) as pool:
        checks = dict(
            zip(
                sources,
                pool.map(
                    lambda s: preflight_source(s, settings, timeout_s=preflight_timeout_s),
                    sources,
                ),
                strict=True,
            )
        )
    for c in checks.values():
        mark = "ok" if c.ok else "UNREACHABLE"
        report_line(f"preflight {c.source:<14} {mark:<11} {c.url}  ({c.detail})")
    for line in run_space_warnings(settings):  # each volume checks its own need again
        report_line(f"preflight {line}")
    root = settings.storage.root()
    if not root.is_local:
        problem = data_root_problem(root)
        mark = "ok" if problem is None else "UNWRITABLE"
        report_line(f"preflight {'data root':<14} {mark:<11} {root.url}  ({problem or 'written'})")
        if problem is not None:  # every volume would fail on it: say so once, start nothing
            return [DatasetOutcome(d, [], f"data root unwritable: {problem}") for d in datasets]
    if checks and not any(c.ok for c in checks.values()):
        report_line(
            "No archive answered: is this machine offline or behind a proxy (HTTPS_PROXY)? "
            "`emingest demo` runs the same pipeline against local replicas of the archives."
        )
    outcomes: list[DatasetOutcome] = []
    jobs: list[VolumeJob] = []
    owners: list[int] = []
    opened: list[Source] = []
    for d in datasets:
        check = checks[d.source]
        if not check.ok:
            outcomes.append(DatasetOutcome(d, [], f"archive unreachable: {check.detail}"))
            continue
        try:
            source = create_source(d.source, settings)
            opened.append(source)
            options = options_for(source, d.options)
            source.check_request(d.ids, options)
            refs = source.discover(d.ids, **options)
        except EmingestError as err:
            log.error("%s/%s: %s", d.source, d.name, err)
            outcomes.append(DatasetOutcome(d, [], f"{type(err).__name__}: {err}"))
            continue
        outcomes.append(DatasetOutcome(d, []))
        for job in jobs_for(source, refs):
            jobs.append(job)
            owners.append(len(outcomes) - 1)
    from emingest.vectors import embed_after_ingest  # issue 13: then the vectors ([embed] models)

    # one Dask cluster for the ingest and the embedding that follows it, not one each
    dask = DaskClient(settings.pipeline) if settings.pipeline.executor == "dask" else None
    try:
        try:
            with Pipeline(settings, progress=progress, stop=stop, dask=dask) as pipe:
                for owner, result in zip(owners, pipe.run(jobs, force=force), strict=True):
                    outcomes[owner].results.append(result)
        finally:
            for source in opened:
                source.close()
        volumes = [r for o in outcomes for r in o.results]
        embed_after_ingest(settings, volumes, progress=progress, report_line=report_line, dask=dask)
    finally:
        if dask is not None:
            dask.close()
    return outcomes


def summary_rows(outcomes: Sequence[DatasetOutcome]) -> list[dict[str, Any]]:
    """One row per volume (or per dataset that failed before it had volumes)."""
    rows = []
    for o in outcomes:
        label = f"{o.dataset.source}:{o.dataset.name}"
        if o.error is not None:
            rows.append(
                {
                    "dataset": label,
                    "volume": "-",
                    "status": error_status(o.error),
                    "shape": "-",
                    "voxel_nm": "-",
                    "bytes": 0,
                    "seconds": 0.0,
                    "mb_s": 0.0,
                    "record": "-",
                }
            )
            continue
        for r in o.results:
            rec = r.record
            nbytes = (rec.nbytes or 0) if rec else 0
            seconds = (rec.ingest_seconds or r.seconds) if rec else r.seconds
            rows.append(
                {
                    "dataset": label,
                    "volume": f"{r.ref.source_id}/{r.ref.name}",
                    "status": r.status,
                    "shape": "x".join(map(str, rec.volume_shape))
                    if rec and rec.volume_shape
                    else "-",
                    "voxel_nm": "x".join(f"{v:g}" for v in rec.voxel_size_nm)
                    if rec and rec.voxel_size_nm
                    else "-",
                    "bytes": nbytes,
                    "seconds": round(seconds, 2),
                    "mb_s": round(nbytes / seconds / 1e6, 1) if seconds and nbytes else 0.0,
                    "record": str(r.record_path),
                }
            )
    return rows


def all_complete(outcomes: Sequence[DatasetOutcome]) -> bool:
    return all(o.error is None and o.results and all(r.ok for r in o.results) for o in outcomes)


__all__ = [
    "DatasetOutcome",
    "Preflight",
    "VolumeRef",
    "all_complete",
    "configuration_problems",
    "preflight_source",
    "resolve_datasets",
    "run_datasets",
    "summary_rows",
]
