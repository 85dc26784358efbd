"""Dask scheduler throughput and task-size efficiency on a LocalCluster (docs/scaling.md).

    .venv/bin/python benchmarks/dask_scheduler.py                  # 2 worker processes
    .venv/bin/python benchmarks/dask_scheduler.py --workers 2 --tasks 20000 --rounds 3

Prints two tables:

1. **Scheduler rate**: ``--tasks`` empty tasks submitted with ``client.map`` and waited for;
   tasks per second from submission to the last completion, per round. This is the ceiling
   on region tasks per second, whatever the number of workers.
2. **Efficiency by task size**: the same total of real work (zstd level 1 of EM-like uint8
   bytes, what a region task spends most of its CPU on) cut into tasks of each size; the
   efficiency is the single-thread time of that work divided by ``workers ×`` the cluster's
   wall time. Small tasks lose to per-task overhead; the table shows where it stops mattering.

Needs the ``dask`` extra (``pip install 'emingest[dask]'``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import lru_cache

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


def scheduler_rate(client: object, tasks: int) -> float:
    from distributed import wait

    start = time.perf_counter()
    futures = client.map(noop, range(tasks), pure=False)  # type: ignore[attr-defined]
    wait(futures)
    elapsed = time.perf_counter() - start
    del futures
    return tasks / elapsed


def efficiency(client: object, workers: int, size: int, total: int, pool: int) -> tuple:
    from distributed import wait

    n = max(1, total // size)
    offsets = [i * 7919 * 4096 for i in range(n)]
    # single thread, in this process, same function and data
    compress_slice(0, size, pool)  # build the pool outside the timing
    t0 = time.perf_counter()
    for off in offsets:
        compress_slice(off, size, pool)
    serial = time.perf_counter() - t0
    client.run(_em_like, pool)  # type: ignore[attr-defined]  # each worker builds its pool first
    t0 = time.perf_counter()
    futures = client.map(compress_slice, offsets, [size] * n, [pool] * n, pure=False)  # type: ignore[attr-defined]
    wait(futures)
    wall = time.perf_counter() - t0
    del futures
    return n, serial, wall, serial / (workers * wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--tasks", type=int, default=20000, help="empty tasks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--total-mib", type=int, default=256, help="work per size row, MiB")
    args = parser.parse_args()

    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise SystemExit("needs the dask extra: pip install 'emingest[dask]'") from err
    import dask
    import distributed

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
        scheduler_rate(client, 1000)  # warm up: imports, connections
        rates = [scheduler_rate(client, args.tasks) for _ in range(args.rounds)]
        print("\n| empty tasks | rounds (tasks/s) | median tasks/s |")
        print("|---:|---|---:|")
        print(
            f"| {args.tasks} | {', '.join(f'{r:,.0f}' for r in rates)} "
            f"| {statistics.median(rates):,.0f} |"
        )

        pool = 32 * MiB
        total = args.total_mib * MiB
        print(
            f"\n| task size | tasks | single thread s | cluster wall s | efficiency "
            f"({args.workers} workers) |"
        )
        print("|---:|---:|---:|---:|---:|")
        for size in (16 << 10, 64 << 10, 256 << 10, MiB, 4 * MiB, 16 * MiB):
            n, serial, wall, eff = efficiency(client, args.workers, size, total, pool)
            label = f"{size >> 10} KiB" if size < MiB else f"{size // MiB} MiB"
            print(f"| {label} | {n} | {serial:.2f} | {wall:.2f} | {eff:.2f} |")


if __name__ == "__main__":
    main()
