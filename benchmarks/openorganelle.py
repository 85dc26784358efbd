"""Benchmark: OpenOrganelle's S3 Zarr pyramid (loopback replica) copied into OME-Zarr.

    .venv/bin/python benchmarks/openorganelle.py --runs 3
    .venv/bin/python benchmarks/openorganelle.py --shape 128,512,512 --runs 1   # quicker
    .venv/bin/python benchmarks/openorganelle.py --executor both --runs 3   # threads vs Dask

One replica (``OpenOrganelleReplica(shape=BENCHMARK_SHAPE)``: int16 s0 + s1 + s2, 64^3 chunks,
zstd 1), in one run, medians of N runs, MB/s of uncompressed voxels of all levels:
  (a) raw GET       -> every chunk object of s0..s2 with requests, 8 threads, bodies discarded
  (b) tensorstore   -> every level read whole with tensorstore's zarr/s3 driver, nothing written
  (c) emingest      -> Pipeline copy of the same levels into OME-Zarr (zstd 3, 128^3 chunks),
                       sha256 + statistics of level 0, records, synced
The target is (c) >= 0.8 x (a). moto serves from this machine's own cores, so absolute figures
rank clients only (shared/reference/performance.md).

``--executor dask`` runs (c) on a 2-process Dask LocalCluster (``pipeline.executor = "dask"``,
``pipeline.scheduler = "local"``: the Pipeline starts its own, as ``emingest`` does, and (c)'s
time includes that start-up). ``--executor both`` runs only (c), on 2 threads and on that
LocalCluster (``pipeline.workers = 2`` on both), alternating on the same replica; the clock
covers ``Pipeline.run`` + sync, the cluster's start-up and close are printed apart. It prints
the medians, their ratio, the load average around every copy and (``--task-times``) where the
time goes: region tasks and their worker-seconds by level, the level-0 digest read back from
the store (in the region threads on threads, in the driver's result loop on Dask), and the
wall time after the last task ended.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests

MB = 1e6


def raw_get(oo: Any, keys: list[str]) -> int:
    local = __import__("threading").local()

    def fetch(key: str) -> int:
        session = getattr(local, "s", None)
        if session is None:
            session = local.s = requests.Session()
            session.trust_env = False
        answer = session.get(f"{oo.endpoint_url}/{oo.bucket}/{key}", timeout=60)
        answer.raise_for_status()
        return len(answer.content)

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(fetch, keys))


def tensorstore_read(oo: Any) -> None:
    import tensorstore as ts

    context = ts.Context({"cache_pool": {"total_bytes_limit": 0}})
    for n in range(oo.levels):
        spec = {"driver": "zarr", "kvstore": oo.tensorstore_kvstore(f"{oo.em_array_path}/s{n}/")}
        array = ts.open(spec, read=True, context=context).result()
        step = max(64, (64 << 20) // (array.shape[1] * array.shape[2] * 2) // 64 * 64)
        for z in range(0, array.shape[0], step):  # 64 MiB bands, as a bounded reader would
            array[z : min(z + step, array.shape[0])].read().result()


def emingest_copy(
    oo: Any, root: Path, executor: str = "threads", timing: Any = None, workers: int = 0
) -> tuple[float, float, str]:
    """(seconds of ``Pipeline.run`` + sync, seconds to set the Pipeline up and close it,
    sha256). Dask: the Pipeline starts and closes its own 2-process LocalCluster.
    ``timing(executor, client)``: a context manager around the run (``task_times``);
    ``workers``: ``pipeline.workers`` (0: the default, cores + 1 threads, 2 Dask processes)."""
    from emingest.config import load_settings
    from emingest.pipeline import Pipeline, VolumeJob
    from emingest.sources.openorganelle import OpenOrganelleSource

    pipeline: dict[str, Any] = {"executor": executor}
    if executor == "dask":
        pipeline.update(scheduler="local", workers=2)
    if workers:
        pipeline["workers"] = workers
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root)},
            "logging": {"log_dir": str(root / "logs")},
            "sources": {"openorganelle": {"endpoint_url": oo.endpoint_url}},
            "pipeline": pipeline,
        },
    )
    source = OpenOrganelleSource(settings)
    t0 = time.perf_counter()
    pipe = Pipeline(settings)
    try:
        jobs = [VolumeJob(source, r) for r in source.discover([oo.dataset])]
        around = (
            timing(executor, getattr(pipe.regions, "client", None))
            if timing is not None
            else contextlib.nullcontext()
        )
        with around:
            t1 = time.perf_counter()
            (result,) = pipe.run(jobs)
            if result.status != "complete":
                raise RuntimeError(result.status)
            os.sync()
            t2 = time.perf_counter()
    finally:
        pipe.close()
    return t2 - t1, (t1 - t0) + (time.perf_counter() - t2), str(result.record.sha256)


def _into(groups: dict[str, list[float]]) -> Any:
    """A ``timing`` for :func:`emingest_copy` that leaves ``task_times``'s figures in ``groups``."""
    from dask_executor import task_times  # type: ignore[import-not-found]

    @contextlib.contextmanager
    def timing(executor: str, client: Any) -> Iterator[None]:
        with task_times(executor, client) as found:
            yield
        groups.update(found)

    return timing


def compare_executors(oo: Any, runs: int, with_task_times: bool) -> dict[str, Any]:
    """The same copy on 2 threads and on a 2-process LocalCluster (``pipeline.workers = 2`` on
    both, as ``dask_executor.py``), alternating, ``runs`` each."""
    from dask_executor import loadavg, summarise  # type: ignore[import-not-found]

    out: dict[str, Any] = {}
    times: dict[str, list[float]] = {"threads": [], "dask": []}
    shas = set()
    with tempfile.TemporaryDirectory(prefix="oo-bench-") as tmp:
        for run in range(runs):
            for executor in ("threads", "dask"):
                target = Path(tmp) / executor
                shutil.rmtree(target, ignore_errors=True)
                before = loadavg()
                groups: dict[str, list[float]] = {}
                seconds, setup, sha = emingest_copy(
                    oo, target, executor, _into(groups) if with_task_times else None, workers=2
                )
                if with_task_times:
                    out[f"{executor}_run{run + 1}_tasks"] = summarise(groups)
                print(
                    f"# run {run + 1} {executor}: {seconds:.2f} s (+{setup:.2f} s set-up/close),"
                    f" load {before} -> {loadavg()}",
                    flush=True,
                )
                times[executor].append(seconds)
                shas.add(sha)
    assert len(shas) == 1, f"threads and Dask disagree: {shas}"
    for executor, runs_s in times.items():
        out[f"{executor}_s"] = [round(t, 2) for t in runs_s]
        out[f"{executor}_median_s"] = round(statistics.median(runs_s), 2)
    out["overhead_ratio"] = round(
        statistics.median(times["dask"]) / statistics.median(times["threads"]), 2
    )
    out["same_sha256"] = True
    return out


def main() -> None:
    from emingest.testing.openorganelle import OpenOrganelleReplica

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default=None, help="s0 shape z,y,x (default BENCHMARK_SHAPE)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--executor",
        choices=("threads", "dask", "both"),
        default="threads",
        help="(c) on threads, on a 2-process Dask LocalCluster, or both (emingest copy only)",
    )
    parser.add_argument(
        "--task-times",
        action="store_true",
        help="with --executor both: region tasks and worker-seconds by level, digest time",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    shape = (
        tuple(int(n) for n in args.shape.split(","))
        if args.shape
        else OpenOrganelleReplica.BENCHMARK_SHAPE
    )
    t0 = time.perf_counter()
    with OpenOrganelleReplica(shape=shape) as oo:  # type: ignore[arg-type]
        print(
            f"# replica {shape} int16, {oo.levels} levels, up in {time.perf_counter() - t0:.0f} s"
        )
        prefix = f"{oo.dataset}/{oo.em_array_path}/"
        keys = [
            k
            for k in oo.objects
            if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith(".")
        ]
        voxels = sum(int(np.prod(s)) * 2 for s in oo.level_shapes)
        compressed = sum(len(oo.objects[k]) for k in keys)
        print(f"# {len(keys)} chunk objects, {compressed / MB:.0f} MB stored, {voxels / MB:.0f} MB")
        if args.executor == "both":
            print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
            result = compare_executors(oo, args.runs, args.task_times)
            print(json.dumps(result, indent=2))
            for name in ("threads", "dask"):
                rate = voxels / result[f"{name}_median_s"] / MB
                print(f"emingest on {name:<8} {rate:>8.0f} MB/s   (median of {args.runs})")
            return
        times: dict[str, list[float]] = {
            "raw GET (8 threads)": [],
            "tensorstore": [],
            "emingest": [],
        }
        shas = set()
        with tempfile.TemporaryDirectory(prefix="oo-bench-") as tmp:
            for _ in range(args.runs):
                t = time.perf_counter()
                raw_get(oo, keys)
                times["raw GET (8 threads)"].append(time.perf_counter() - t)
                t = time.perf_counter()
                tensorstore_read(oo)
                times["tensorstore"].append(time.perf_counter() - t)
                out = Path(tmp) / "data"
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                shas.add(emingest_copy(oo, out, args.executor)[2])
                times["emingest"].append(time.perf_counter() - t)
        assert len(shas) == 1, shas
    raw = voxels / statistics.median(times["raw GET (8 threads)"]) / MB
    print(f"{'approach':<22} {'MB/s':>8} {'x raw GET':>10}   (median of {args.runs})")
    for name, runs in times.items():
        rate = voxels / statistics.median(runs) / MB
        print(f"{name:<22} {rate:>8.0f} {rate / raw:>10.2f}")
    print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
