"""Benchmark: OpenOrganelle's S3 Zarr pyramid (loopback replica) copied into OME-Zarr.

    .venv/bin/python benchmarks/openorganelle.py --runs 3
    .venv/bin/python benchmarks/openorganelle.py --shape 128,512,512 --runs 1   # quicker

One replica (``OpenOrganelleReplica(shape=BENCHMARK_SHAPE)``: int16 s0 + s1 + s2, 64^3 chunks,
zstd 1), in one run, medians of N runs, MB/s of uncompressed voxels of all levels:
  (a) raw GET       -> every chunk object of s0..s2 with requests, 8 threads, bodies discarded
  (b) tensorstore   -> every level read whole with tensorstore's zarr/s3 driver, nothing written
  (c) emingest      -> Pipeline copy of the same levels into OME-Zarr (zstd 3, 128^3 chunks),
                       sha256 + statistics of level 0, records, synced
The target is (c) >= 0.8 x (a). moto serves from this machine's own cores, so absolute figures
rank clients only (shared/reference/performance.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
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


def emingest_copy(oo: Any, root: Path) -> str:
    from emingest.config import load_settings
    from emingest.pipeline import Pipeline, VolumeJob
    from emingest.sources.openorganelle import OpenOrganelleSource

    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root)},
            "logging": {"log_dir": str(root / "logs")},
            "sources": {"openorganelle": {"endpoint_url": oo.endpoint_url}},
        },
    )
    source = OpenOrganelleSource(settings)
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(source, r) for r in source.discover([oo.dataset])])
    if result.status != "complete":
        raise RuntimeError(result.status)
    os.sync()
    return str(result.record.sha256)


def main() -> None:
    from emingest.testing.openorganelle import OpenOrganelleReplica

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default=None, help="s0 shape z,y,x (default BENCHMARK_SHAPE)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
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
                shas.add(emingest_copy(oo, out))
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
