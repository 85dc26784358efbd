"""Benchmark: the same local ingest into a folder and into an ``s3://`` data root (moto's S3
server on loopback), on threads, and optionally on a 2-process Dask LocalCluster.

    .venv/bin/python benchmarks/s3_data_root.py --size-mib 256 --runs 3 [--dask]

Prints per target the median wall time of ``Pipeline.run`` and MB/s of level 0, the objects
and bytes written, and the requests the server saw by method. moto runs in a child process on
the same cores as the ingest, so the S3 figure is a floor for a real object store, and mostly
measures moto's own cost per request. Figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MiB = 1 << 20


def _settings(root: str, work: Path, executor: str, endpoint: str | None) -> Any:
    from emingest.config import load_settings

    storage: dict[str, Any] = {"data_root": root}
    if endpoint:
        storage |= {
            "s3_endpoint_url": endpoint,
            "work_dir": str(work / "s3-work"),
            "s3_credentials": "environment",
        }
    return load_settings(
        environ={},
        overrides={
            "storage": storage,
            "pipeline": {"workers": 2, "executor": executor},
            "logging": {"log_dir": str(work / "logs")},
            "embed": {"models": []},
        },
    )


def ingest_once(tiff: Path, settings: Any) -> tuple[float, Any]:
    from emingest.pipeline import Pipeline, jobs_for
    from emingest.sources import create_source

    source = create_source("local", settings)
    jobs = jobs_for(source, source.discover([str(tiff)]))
    with Pipeline(settings) as pipe:
        t0 = time.perf_counter()
        [res] = pipe.run(jobs, force=True)
        if settings.storage.root().is_local:
            os.sync()
        seconds = time.perf_counter() - t0
    assert res.status == "complete", res.status
    return seconds, res.record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dask", action="store_true", help="also on a 2-process LocalCluster")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from ingest_local import make_tiff  # type: ignore[import-not-found]

    from emingest.testing.openorganelle import S3Replica
    from emingest.testing.s3_root import CREDENTIALS

    os.environ.update(CREDENTIALS)
    work = args.work or Path(tempfile.mkdtemp(prefix="emingest-bench-s3-"))
    work.mkdir(parents=True, exist_ok=True)
    tiff = work / f"em_{args.size_mib}mib.tif"
    if not tiff.exists():
        make_tiff(tiff, args.size_mib / 1024)  # its size is in GiB
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"input: {tiff} ({tiff.stat().st_size / MiB:.0f} MiB)")
    executors = ["threads", "dask"] if args.dask else ["threads"]
    with S3Replica() as replica:
        for executor in executors:
            for target in ("folder", "s3"):
                times = []
                record = None
                counts: collections.Counter[str] = collections.Counter()
                for run in range(args.runs):
                    if target == "folder":
                        root = work / "data"
                        shutil.rmtree(root, ignore_errors=True)
                        settings = _settings(str(root), work, executor, None)
                    else:
                        bucket = f"bench-{executor}-{run}"
                        replica.create_bucket(bucket, public=False)
                        settings = _settings(
                            f"s3://{bucket}/data", work, executor, replica.endpoint_url
                        )
                        replica.clear_request_log()
                    seconds, record = ingest_once(tiff, settings)
                    times.append(seconds)
                    if target == "s3":
                        counts = collections.Counter(m for m, _, _ in replica.request_log)
                median = statistics.median(times)
                nbytes = record.nbytes if record else 0
                print(
                    f"{executor:7s} {target:6s} runs {', '.join(f'{t:.2f}' for t in times)} s; "
                    f"median {median:.2f} s, {nbytes / median / 1e6:.0f} MB/s of level 0; "
                    f"store {record.file_size_bytes / MiB if record else 0:.0f} MiB"
                    + (f"; requests {dict(counts)}" if counts else "")
                )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
