"""``emingest run``: every configured dataset, concurrently, after a preflight of each archive.

What users of the earlier pipeline ran every day (all loaders in parallel, a log per loader,
then a consolidation), done with one shared worker budget: the datasets' volumes all go into one
:class:`~emingest.pipeline.Pipeline`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from emingest.config import DatasetSettings, Settings
from emingest.errors import EmingestError
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult, jobs_for
from emingest.progress import Progress
from emingest.records import error_status
from emingest.sources import create_source
from emingest.sources.base import VolumeRef

log = logging.getLogger(__name__)

AWS_S3 = "https://{bucket}.s3.amazonaws.com/"


@dataclass
class Preflight:
    source: str
    url: str
    ok: bool
    detail: str
    seconds: float


def probe_url(source: str, options: Any) -> str:
    """The one URL that says whether ``source``'s archive answers (any HTTP status counts)."""
    if source == "idr":
        return f"{options.api_url.rstrip('/')}/api/v0/"
    if source == "empiar":
        return f"{options.api_url.rstrip('/')}/entry/11759/"
    if source == "epfl":
        return options.base_url.rstrip("/") + "/"
    if source == "openorganelle":
        return options.endpoint_url or AWS_S3.format(bucket=options.bucket)
    if source == "flyem":
        return f"{options.dvid_url.rstrip('/')}/api/server/info"
    raise KeyError(source)


def preflight_url(source: str, settings: Settings) -> str | None:
    """The URL to probe for ``source`` with these settings; None when there is none."""
    try:
        options = create_source(source, settings).options  # type: ignore[attr-defined]
        return probe_url(source, options)
    except (EmingestError, AttributeError, KeyError):
        return None


def preflight(source: str, url: str | None, *, timeout_s: float) -> Preflight:
    """Reach the archive once, with a short timeout; never raises."""
    t0 = time.monotonic()
    if url is None:
        return Preflight(source, "-", True, "no preflight for this source", 0.0)
    if url.startswith("ftp://"):
        return Preflight(source, url, True, "not probed (FTP)", 0.0)
    try:
        resp = requests.get(url, timeout=timeout_s, stream=True)
        resp.close()
        return Preflight(source, url, True, f"HTTP {resp.status_code}", time.monotonic() - t0)
    except requests.RequestException as err:
        inner = err.args[0] if err.args else ""
        detail = f"{type(err).__name__}: {getattr(inner, 'reason', inner)}"
        return Preflight(source, url, False, detail, time.monotonic() - t0)


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


def run_datasets(
    settings: Settings,
    datasets: Sequence[DatasetSettings],
    *,
    progress: Progress | None = None,
    force: bool = False,
    preflight_timeout_s: float = 5.0,
    report_line: Any = print,
) -> list[DatasetOutcome]:
    """Preflight each archive, discover every dataset, then ingest all volumes together."""
    sources = sorted({d.source for d in datasets})
    # Sources are imported here, in one thread: concurrent first imports can see half-made
    # modules. Only the probes run in parallel.
    urls = {s: preflight_url(s, settings) for s in sources}
    with ThreadPoolExecutor(max(1, len(sources))) as pool:
        checks = dict(
            zip(
                sources,
                pool.map(lambda s: preflight(s, urls[s], timeout_s=preflight_timeout_s), sources),
                strict=True,
            )
        )
    for c in checks.values():
        mark = "ok" if c.ok else "UNREACHABLE"
        report_line(f"preflight {c.source:<14} {mark:<11} {c.url}  ({c.detail})")
    if checks and not any(c.ok for c in checks.values()):
        report_line(
            "No archive answered: is this machine offline or behind a proxy (HTTPS_PROXY)? "
            "`emingest demo` runs the same pipeline against local replicas of the archives."
        )
    outcomes: list[DatasetOutcome] = []
    jobs: list[VolumeJob] = []
    owners: list[int] = []
    opened: list[Any] = []
    for d in datasets:
        check = checks[d.source]
        if not check.ok:
            outcomes.append(DatasetOutcome(d, [], f"archive unreachable: {check.detail}"))
            continue
        try:
            source = create_source(d.source, settings)
            opened.append(source)
            refs = source.discover(d.ids, **d.options)
        except EmingestError as err:
            log.error("%s/%s: %s", d.source, d.name, err)
            outcomes.append(DatasetOutcome(d, [], f"{type(err).__name__}: {err}"))
            continue
        outcomes.append(DatasetOutcome(d, []))
        for job in jobs_for(source, refs):
            jobs.append(job)
            owners.append(len(outcomes) - 1)
    try:
        with Pipeline(settings, progress=progress) as pipe:
            for owner, result in zip(owners, pipe.run(jobs, force=force), strict=True):
                outcomes[owner].results.append(result)
    finally:
        for source in opened:
            close = getattr(source, "close", None)
            if close is not None:
                close()
    from emingest.vectors import embed_after_ingest  # issue 13: then the vectors ([embed] models)

    volumes = [r for o in outcomes for r in o.results]
    embed_after_ingest(settings, volumes, progress=progress, report_line=report_line)
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
    "preflight",
    "run_datasets",
    "summary_rows",
]
