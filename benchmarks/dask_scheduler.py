"""Dask scheduler throughput and task-size efficiency on a LocalCluster (docs/scaling.md).

    .venv/bin/python benchmarks/dask_scheduler.py                  # 2 worker processes
    .venv/bin/python benchmarks/dask_scheduler.py --workers 2 --tasks 5000 --rounds 3

Prints two tables:

1. **Scheduler rate**: ``--tasks`` empty tasks submitted with ``client.map`` and waited for;
   tasks per second from submission to the last completion, per round, and tasks per
   CPU-second of this process (a LocalCluster's scheduler runs in it, beside the client).
   The CPU figure is what one dedicated core sustains: on a shared, loaded machine the wall
   figure is lower. This is the ceiling on region tasks per second, whatever the workers.
2. **Efficiency by task size**: the same total of real work (zstd level 1 of EM-like uint8
   bytes, what a region task spends most of its CPU on) cut into tasks of each size. CPU
   efficiency = the work's CPU time in one thread / (the workers' + the scheduler's CPU
   time, less what the idle cluster burns over the same wall time): what is left after
   per-task overhead, much less sensitive than wall time to other load on the machine.

Needs the ``dask`` extra (``pip install 'emingest[dask]'``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

MiB = 1 << 20


def noop(i: int) -> int:
    return i


@lru_cache(maxsize=1)
def _em_like(nbytes: int) -> bytes:
    """EM-like bytes (smooth structure + noise, zstd ratio about 1.25), made once per process."""
    from emingest.testing.synthetic import synthetic_em

    side = round((nbytes / 16) ** 0.5)
    volume, _ = synthetic_em((16, side, side), seed=7)
    return volume.tobytes()[:nbytes].ljust(nbytes, b"\0")


def compress_slice(offset: int, size: int, pool_bytes: int) -> int:
    """One 'region task': zstd level 1 of ``size`` bytes of the pool; returns the output size."""
    import numcodecs

    data = _em_like(pool_bytes)
    start = offset % max(1, pool_bytes - size + 1)
    return len(numcodecs.Zstd(level=1).encode(data[start : start + size]))


def scheduler_rate(client: Any, tasks: int, task: Any) -> tuple[float, float]:
    """(wall s, CPU s of this process) for ``tasks`` empty tasks. A LocalCluster's scheduler
    runs in this process, so its CPU time is the scheduler's plus the client's."""
    from distributed import wait

    cpu0, t0 = time.process_time(), time.perf_counter()
    futures = client.map(task, range(tasks), pure=False)
    wait(futures)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    del futures
    return wall, cpu


def _workers_cpu(client: Any) -> float:
    return float(sum(client.run(time.process_time).values()))


def efficiency(client: Any, tasks: Any, size: int, total: int, pool: int) -> dict[str, float]:
    """One row: the same work in one thread here, then as tasks of ``size`` on the cluster."""
    from distributed import wait

    n = max(1, total // size)
    offsets = [i * 7919 * 4096 for i in range(n)]
    compress_slice(0, size, pool)  # build the pool outside the timing
    cpu0 = time.process_time()
    for off in offsets:
        compress_slice(off, size, pool)
    serial = time.process_time() - cpu0
    client.run(tasks._em_like, pool)  # each worker builds its pool before the timing
    workers0, cpu0, t0 = _workers_cpu(client), time.process_time(), time.perf_counter()
    futures = client.map(tasks.compress_slice, offsets, [size] * n, [pool] * n, pure=False)
    wait(futures)
    wall = time.perf_counter() - t0
    sched = time.process_time() - cpu0
    workers = _workers_cpu(client) - workers0
    del futures
    return {"n": n, "serial": serial, "wall": wall, "workers": workers, "sched": sched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--tasks", type=int, default=5000, help="empty tasks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--total-mib", type=int, default=128, help="work per size row, MiB")
    args = parser.parse_args()

    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise SystemExit("needs the dask extra: pip install 'emingest[dask]'") from err
    import dask
    import distributed

    load = os.getloadavg()
    print(
        f"dask {dask.__version__}, distributed {distributed.__version__}, "
        f"{os.cpu_count()} CPUs, LocalCluster of {args.workers} processes × 1 thread"
    )
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        Client(cluster) as client,
    ):
        # The task functions by reference, not by value: a function of __main__ would be pickled
        # with fresh globals per task, rebuilding the worker's data pool every time.
        client.upload_file(__file__)
        tasks = importlib.import_module(Path(__file__).stem)
        scheduler_rate(client, 1000, tasks.noop)  # warm up: imports, connections
        rounds = [scheduler_rate(client, args.tasks, tasks.noop) for _ in range(args.rounds)]
        print(f"\nload average before: {load[0]:.1f}; during: {os.getloadavg()[0]:.1f}")
        print(
            "\n| empty tasks | tasks/s (wall), per round "
            "| tasks per CPU-second of scheduler+client |"
        )
        print("|---:|---|---|")
        print(
            f"| {args.tasks} | {', '.join(f'{args.tasks / w:,.0f}' for w, _ in rounds)} "
            f"| {', '.join(f'{args.tasks / c:,.0f}' for _, c in rounds)} |"
        )

        # What the cluster burns doing nothing (heartbeats, event loops): subtracted below, so
        # the overhead per task is what a task adds.
        workers0, cpu0 = _workers_cpu(client), time.process_time()
        time.sleep(3)
        idle_workers = (_workers_cpu(client) - workers0) / 3
        idle_sched = (time.process_time() - cpu0) / 3
        print(
            f"\nidle CPU: workers {idle_workers * 1000:.0f} ms/s in all, "
            f"scheduler+client {idle_sched * 1000:.0f} ms/s"
        )
        pool = 32 * MiB
        total = args.total_mib * MiB
        print(
            "\n| task size | tasks | work, 1 thread (CPU s) | cluster wall s | worker CPU s "
            "| scheduler+client CPU s | overhead per task (ms CPU) | CPU efficiency |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in (64 << 10, 256 << 10, MiB, 4 * MiB, 16 * MiB):
            r = efficiency(client, tasks, size, total, pool)
            label = f"{size >> 10} KiB" if size < MiB else f"{size // MiB} MiB"
            busy = r["workers"] + r["sched"] - (idle_workers + idle_sched) * r["wall"]
            overhead = (busy - r["serial"]) / r["n"] * 1000
            eff = r["serial"] / busy
            print(
                f"| {label} | {r['n']:.0f} | {r['serial']:.2f} | {r['wall']:.2f} "
                f"| {r['workers']:.2f} | {r['sched']:.2f} | {overhead:.2f} | {eff:.2f} |"
            )


if __name__ == "__main__":
    main()
