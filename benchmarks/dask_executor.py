"""Benchmark: the same local ingest on threads and on a 2-process Dask LocalCluster, and the
scheduler's sustained rate for trivial tasks.

    .venv/bin/python benchmarks/dask_executor.py --size-mib 256 --runs 2

Prints, per executor, the median wall time of ``Pipeline.run`` (the cluster is started
before the clock starts; its start-up is printed apart), the region tasks it ran, and where
the Dask run's extra time goes: the level-0 digest read back from the store in the driver
(threads digest from the page cache in a task of their own), and the scheduler's per-task
cost. With ``--task-times`` it also prints, per executor, the region tasks' count and
worker-seconds by kind and level (threads: a timer around ``run_region``; Dask: the
scheduler's task stream, compute time only) and the driver's level-0 digest time. The load
average (``/proc/loadavg``) is printed before and after every run: the machine is shared.
Figures go in docs/benchmarks.md. ``benchmarks/openorganelle.py --executor both`` reuses
these helpers for the OpenOrganelle copy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages (Linux), for the record of a shared machine."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


_KEY = re.compile(r"^emingest-([a-z0-9]+)-.*-l(\d+)-")


def _add(groups: dict[str, list[float]], name: str, seconds: float) -> None:
    entry = groups.setdefault(name, [0, 0.0])
    entry[0] += 1
    entry[1] += seconds


@contextmanager
def task_times(executor: str, address: Any = None) -> Iterator[dict[str, list[float]]]:
    """``{"<kind> l<level>": [tasks, worker-seconds], "digest (driver)" or "digest": ...}``,
    filled when the block ends; ``address``: the scheduler's, or a ``distributed.Client``.
    Threads: a timer around ``run_region``; Dask: compute times
    from the scheduler's task stream (deserialisation and transfers are not in them). The
    level-0 digest of a remote source (``OrderedDigest``) is timed on both: in the region
    threads on threads, in the driver's result loop on Dask. ``"after the last task"``: wall
    time from the end of the last region task to the end of the block (the digest's rest,
    records, sync)."""
    import emingest.pipeline.executors as executors_module
    from emingest.pipeline.digest import OrderedDigest

    groups: dict[str, list[float]] = {}
    lock = threading.Lock()
    drain = OrderedDigest._drain
    digest_name = "digest (driver)" if executor == "dask" else "digest (in region threads)"

    def timed_drain(self: OrderedDigest) -> None:
        t = time.perf_counter()
        try:
            drain(self)
        finally:
            with lock:
                _add(groups, digest_name, time.perf_counter() - t)

    OrderedDigest._drain = timed_drain  # type: ignore[method-assign]
    try:
        if executor == "threads":
            run_region = executors_module.run_region

            last = [0.0]

            def timed(task, ctx):  # type: ignore[no-untyped-def]
                t = time.perf_counter()
                try:
                    return run_region(task, ctx)
                finally:
                    with lock:
                        _add(groups, f"{task.kind} l{task.level}", time.perf_counter() - t)
                        last[0] = max(last[0], time.time())

            executors_module.run_region = timed  # type: ignore[assignment]
            try:
                yield groups
                _add(groups, "after the last task", time.time() - last[0])
            finally:
                executors_module.run_region = run_region
        else:
            from distributed import Client, get_task_stream

            if isinstance(address, Client):  # a Pipeline's own client (scheduler = "local")
                with get_task_stream(client=address) as stream:
                    yield groups
                    end = time.time()
            else:
                with Client(address) as client, get_task_stream(client=client) as stream:
                    yield groups
                    end = time.time()
            stops = [0.0]
            for rec in stream.data:
                match = _KEY.match(str(rec.get("key")))
                if match is None:
                    continue
                compute = sum(
                    s["stop"] - s["start"]
                    for s in rec.get("startstops", ())
                    if s.get("action") == "compute"
                )
                _add(groups, f"{match[1]} l{match[2]}", compute)
                stops += [s["stop"] for s in rec.get("startstops", ())]
            _add(groups, "after the last task", end - max(stops))
    finally:
        OrderedDigest._drain = drain  # type: ignore[method-assign]


def summarise(groups: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Rounded, with per-task milliseconds, and a total over the region tasks."""
    out: dict[str, dict[str, float]] = {}
    tasks, seconds = 0, 0.0
    for name in sorted(groups):
        n, s = groups[name]
        if name == "after the last task":  # wall time from the last task's end to the run's
            out[name] = {"s": round(s, 2)}
            continue
        if not name.startswith("digest"):
            tasks, seconds = tasks + int(n), seconds + s
        count = "calls" if name.startswith("digest") else "tasks"  # digest: OrderedDigest._drain
        out[name] = {count: int(n), "worker_s": round(s, 2), "ms_per_task": round(1e3 * s / n, 1)}
    if tasks:
        out["all region tasks"] = {
            "tasks": tasks,
            "worker_s": round(seconds, 2),
            "ms_per_task": round(1e3 * seconds / tasks, 1),
        }
    return out


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
        "--task-times",
        action="store_true",
        help="also time the region tasks by kind and level, and the driver's digest",
    )
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

    from emingest.dask_cluster import worker_environ

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
        for run in range(args.runs):
            for executor in ("threads", "dask"):
                before = loadavg()
                if args.task_times:
                    with task_times(executor, cluster.scheduler_address) as groups:
                        s, sha, tasks = ingest_once(
                            tiff, work / executor, executor, cluster.scheduler_address
                        )
                    out[f"{executor}_run{run + 1}_tasks"] = summarise(groups)
                else:
                    s, sha, tasks = ingest_once(
                        tiff, work / executor, executor, cluster.scheduler_address
                    )
                print(f"# run {run + 1} {executor}: {s:.2f} s, load {before} -> {loadavg()}")
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
