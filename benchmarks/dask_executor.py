"""Benchmark: the same local ingest on threads and on a 2-process Dask LocalCluster, and the
scheduler's sustained rate for trivial tasks.

    .venv/bin/python benchmarks/dask_executor.py --size-mib 256 --runs 2

Prints, per executor, the median wall time of ``Pipeline.run`` (the cluster is started
before the clock starts; its start-up is printed apart), the region tasks it ran, and where
the Dask run's extra time goes: the level-0 digest read back from the store in the driver
(threads digest from the page cache in a task of their own), and the scheduler's per-task
cost. Figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MiB = 1 << 20


def _settings(root: Path, executor: str, scheduler: str = "local"):
    from emingest.config import load_settings

    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root)},
            "pipeline": {"workers": 2, "executor": executor, "scheduler": scheduler},
            "logging": {"log_dir": str(root / "logs")},
        },
    )


class TaskCount:
    """Progress that counts finished region tasks (one ``advance`` each)."""

    def __init__(self) -> None:
        self.tasks = 0

    def start(self, key: str, label: str, total_bytes: int) -> None:
        pass

    def advance(self, key: str, nbytes: int) -> None:
        self.tasks += 1

    def finish(self, key: str, status: str) -> None:
        pass


def ingest_once(tiff: Path, root: Path, executor: str, scheduler: str) -> tuple[float, str, int]:
    from emingest.pipeline import Pipeline, jobs_for
    from emingest.sources import create_source

    shutil.rmtree(root, ignore_errors=True)
    settings = _settings(root, executor, scheduler)
    source = create_source("local", settings)
    jobs = jobs_for(source, source.discover([str(tiff)]))
    count = TaskCount()
    with Pipeline(settings, progress=count) as pipe:
        t0 = time.perf_counter()
        [res] = pipe.run(jobs, force=True)
        os.sync()
        seconds = time.perf_counter() - t0
    assert res.status == "complete", res.status
    return seconds, res.record.sha256 or "", count.tasks


def digest_from_store_seconds(store: Path) -> float:
    """What the Dask path adds in the driver: level 0 read back band by band + digest."""
    import numpy as np

    from emingest.omezarr.writer import OmeZarrWriter
    from emingest.regions import plane_bands
    from emingest.statistics import StreamingDigest

    meta = json.loads((store / "s0" / "zarr.json").read_text())
    shape = tuple(meta["shape"])
    from emingest.omezarr.metadata import plan_levels

    levels = plan_levels(shape, (128, 128, 128), None)
    writer = OmeZarrWriter(
        store,
        name="bench",
        levels=levels,
        dtype=np.dtype("uint8"),
        chunk_shape=(128,) * 3,
        zstd_level=1,
    )
    digest = StreamingDigest(np.dtype("uint8"))
    t0 = time.perf_counter()
    budget = max(32 * MiB, 128 * shape[1] * shape[2])
    for band in plane_bands(shape, 1, min(budget, 4 * 32 * MiB)):
        digest.update(writer.read(0, band))
    digest.result()
    return time.perf_counter() - t0


def scheduler_rate(address: str, n: int) -> dict[str, float]:
    from distributed import Client, as_completed

    from emingest.pipeline.tasks import trivial_task

    with Client(address) as client:
        client.submit(trivial_task, 0, pure=False).result()  # warm the workers
        t0 = time.perf_counter()
        futures = [client.submit(trivial_task, i, pure=False) for i in range(n)]
        submitted = time.perf_counter() - t0
        for _ in as_completed(futures):
            pass
        total = time.perf_counter() - t0
    return {"tasks": n, "submit_s": submitted, "total_s": total, "tasks_per_s": n / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=5000, help="trivial tasks for the rate")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument(
        "--dask-default-env",
        action="store_true",
        help="start workers with Dask's own environment (MALLOC_TRIM_THRESHOLD_=65536)",
    )
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from ingest_local import make_tiff  # type: ignore[import-not-found]

    work = args.work or Path(tempfile.mkdtemp(prefix="emingest-bench-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    tiff = work / f"em_{args.size_mib}mib.tif"
    shape = make_tiff(tiff, args.size_mib / 1024)
    print(f"# {platform.node()} {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"# volume {shape} uint8 = {tiff.stat().st_size / MiB:.0f} MiB, 128^3 chunks, 2 workers")

    import dask
    from distributed import LocalCluster

    from emingest.pipeline.executors import worker_environ

    # the environment emingest's own LocalCluster gives its workers, unless --dask-default-env
    environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    if not args.dask_default_env:
        environ = worker_environ()
    print(f"# worker environment: {environ}")
    t0 = time.perf_counter()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    startup = time.perf_counter() - t0
    out: dict[str, object] = {"cluster_startup_s": round(startup, 2)}
    try:
        times: dict[str, list[float]] = {"threads": [], "dask": []}
        digests = set()
        for _ in range(args.runs):
            for executor in ("threads", "dask"):
                s, sha, tasks = ingest_once(
                    tiff, work / executor, executor, cluster.scheduler_address
                )
                times[executor].append(s)
                digests.add(sha)
                out["region_tasks"] = tasks
        assert len(digests) == 1, "threads and Dask disagree"
        for executor, ts in times.items():
            out[f"{executor}_s"] = [round(t, 2) for t in ts]
            out[f"{executor}_median_s"] = round(statistics.median(ts), 2)
        out["overhead_ratio"] = round(
            statistics.median(times["dask"]) / statistics.median(times["threads"]), 2
        )
        store = next((work / "dask").rglob("*.ome.zarr"))
        out["digest_from_store_s"] = round(digest_from_store_seconds(store), 2)
        out["scheduler"] = scheduler_rate(cluster.scheduler_address, args.tasks)
        out["same_sha256"] = len(digests) == 1
    finally:
        cluster.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
