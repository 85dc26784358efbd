"""Benchmark: the region API and the patch loader against direct tensorstore reads (issue 14).

    .venv/bin/python benchmarks/serve.py --shape 64,1024,1024 --requests 200

A synthetic uint8 volume is ingested from a local TIFF with the default settings (128^3
chunks), then:
  (a) latency: one client, sequential 512 x 512 level-0 planes at random (z, y, x) through
      ``GET /api/records/{id}/region?format=raw`` of ``emingest serve`` (a separate process), vs
      the same boxes read in this process with tensorstore, without a chunk cache ("direct")
      and with the server's (serve.chunk_cache_bytes, "cached"): p50 / p95;
  (b) throughput: 16 concurrent clients (threads, one HTTP session each) vs 16 threads reading
      with tensorstore: planes/s and MB/s; target >= 0.5 x direct;
  (c) the patch loader: ``emingest.torch.PatchDataset`` patches/s with 0 and 2 DataLoader
      workers vs a direct tensorstore loop reading the same random boxes.
Client and server share the machine's cores, so (a) and (b) include the client's own work.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PLANE = 512
VOLUME_ID = "local/bench/volume"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _boxes(shape: tuple[int, int, int], n: int, seed: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [
        (
            int(rng.integers(0, shape[0])),
            int(rng.integers(0, shape[1] - PLANE + 1)),
            int(rng.integers(0, shape[2] - PLANE + 1)),
        )
        for _ in range(n)
    ]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(data_root: Path, cache_bytes: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emingest.cli",
            "serve",
            "--port",
            "0",
            "--data-root",
            str(data_root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={
            **os.environ,
            "EMINGEST_SERVE__MAX_REGION_BYTES": str(1 << 30),
            "EMINGEST_SERVE__CHUNK_CACHE_BYTES": str(cache_bytes),
        },
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if found:
            # keep reading its output, or a full pipe would block the server
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, found.group(1)
    raise RuntimeError("the server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shape", default="64,1024,1024", help="z,y,x of the volume")
    ap.add_argument("--requests", type=int, default=200, help="planes per measurement")
    ap.add_argument("--patches", type=int, default=512, help="patches per loader measurement")
    ap.add_argument(
        "--cache-bytes",
        type=int,
        default=None,
        help="serve.chunk_cache_bytes of the server and the cached reader (default 256 MiB)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians printed)")
    ap.add_argument("--workdir", type=Path, default=Path("bench-out"))
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))

    import requests
    import tensorstore as ts

    from emingest.config import load_settings
    from emingest.pipeline import Pipeline, jobs_for
    from emingest.sources import create_source
    from emingest.testing.synthetic import SyntheticEM, write_tiff_stack
    from emingest.volume import open_volume

    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    tif = write_tiff_stack(work / "volume.tif", SyntheticEM(shape, "uint8", seed=1))  # type: ignore[arg-type]
    overrides: dict[str, object] = {
        "storage": {"data_root": str(work / "data")},
        "logging": {"log_dir": str(work / "logs")},
    }
    if args.cache_bytes is not None:
        overrides["serve"] = {"chunk_cache_bytes": args.cache_bytes}
    settings = load_settings(overrides=overrides)
    source = create_source("local", settings)
    refs = source.discover([str(tif)])
    with Pipeline(settings) as pipe:
        result = pipe.run(jobs_for(source, refs))[0]
    assert result.ok, result.status
    rid = f"{result.ref.source}/{result.ref.source_id}/{result.ref.name}"
    vol = open_volume(rid, settings=settings)
    print(f"# volume {rid} {shape} uint8, chunks {vol.record.chunk_shape}, cpus {os.cpu_count()}")
    s0 = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(vol.store / "s0")}}
    ).result()

    cached = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(vol.store / "s0")}},
        context=ts.Context({"cache_pool": {"total_bytes_limit": settings.serve.chunk_cache_bytes}}),
    ).result()

    def direct(box: tuple[int, int, int], arr: object = s0) -> int:
        z, y, x = box
        return int(arr[z : z + 1, y : y + PLANE, x : x + PLANE].read().result().nbytes)  # type: ignore[index]

    def direct_cached(box: tuple[int, int, int]) -> int:
        return direct(box, cached)

    cache_bytes = settings.serve.chunk_cache_bytes
    print(f"# server and 'cached' reader: chunk cache {cache_bytes / 2**20:.0f} MiB")
    proc, url = _start_server(settings.storage.data_root, cache_bytes)
    try:
        session = requests.Session()
        region_url = f"{url}/api/records/{rid}/region"

        def served(box: tuple[int, int, int], sess: requests.Session = session) -> int:
            z, y, x = box
            params = {"z": z, "y": f"{y}:{y + PLANE}", "x": f"{x}:{x + PLANE}", "format": "raw"}
            resp = sess.get(region_url, params=params, timeout=60)
            resp.raise_for_status()
            return len(resp.content)

        served(_boxes(shape, 1, 0)[0])  # warm: first open of the store
        direct(_boxes(shape, 1, 0)[0])
        # (a) latency: direct and API alternate box by box, so load from elsewhere hits both
        fns = {"direct": direct, "cached": direct_cached, "api": served}
        lat: dict[str, list[float]] = {name: [] for name in fns}
        for box in _boxes(shape, args.requests, 1):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(box)
                lat[name].append((time.perf_counter() - t0) * 1e3)
        for name in fns:
            p50, p95 = _pct(lat[name], 50), _pct(lat[name], 95)
            print(f"latency {name:>6}: p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
        # (b) throughput, 16 concurrent clients, rounds alternating direct and API
        sessions = [requests.Session() for _ in range(16)]
        rates: dict[str, list[float]] = {name: [] for name in fns}
        mbs: dict[str, list[float]] = {name: [] for name in fns}
        cpu: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
        for rnd in range(args.rounds):
            for name, fn in fns.items():
                boxes = _boxes(shape, args.requests, 10 + rnd)
                with ThreadPoolExecutor(16) as pool:
                    cpu0 = (time.process_time(), _cpu_seconds(proc.pid))
                    t0 = time.perf_counter()
                    if name != "api":
                        total = sum(pool.map(fn, boxes))
                    else:
                        total = sum(
                            pool.map(
                                lambda ib: served(ib[1], sessions[ib[0] % 16]), enumerate(boxes)
                            )
                        )
                    dt = time.perf_counter() - t0
                    cpu[name][0].append((time.process_time() - cpu0[0]) / len(boxes) * 1e3)
                    cpu[name][1].append((_cpu_seconds(proc.pid) - cpu0[1]) / len(boxes) * 1e3)
                rates[name].append(len(boxes) / dt)
                mbs[name].append(total / dt / 1e6)
        for name in fns:
            r, m = statistics.median(rates[name]), statistics.median(mbs[name])
            here, server = (statistics.median(v) for v in cpu[name])
            print(
                f"16 clients {name:>6}: {r:7.1f} planes/s  {m:7.1f} MB/s (median of rounds); "
                f"CPU per plane: this process {here:.1f} ms, server {server:.1f} ms"
            )
        ratio = statistics.median(a / d for a, d in zip(rates["api"], rates["direct"], strict=True))
        ratio_c = statistics.median(
            a / d for a, d in zip(rates["api"], rates["cached"], strict=True)
        )
        print(f"api / direct throughput: {ratio:.2f}x (median of rounds; target >= 0.5x)")
        print(f"api / direct with the same chunk cache: {ratio_c:.2f}x")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)

    # (c) the patch loader
    from emingest.patches import PatchSampler

    patch = (1, 256, 256)
    n = args.patches
    sampler = PatchSampler([rid], patch_shape=patch, n_samples=n, seed=0, settings=settings)
    corners = [sampler[i].corner for i in range(n)]

    def direct_loop() -> float:
        t0 = time.perf_counter()
        for z, y, x in corners:
            s0[z : z + 1, y : y + 256, x : x + 256].read().result()
        return n / (time.perf_counter() - t0)

    def sampler_loop() -> float:
        t0 = time.perf_counter()
        for p in sampler:
            _ = p.raw
        return n / (time.perf_counter() - t0)

    loops = {"direct tensorstore loop": direct_loop, "PatchSampler (numpy)": sampler_loop}
    try:
        from emingest.torch import PatchDataset
    except ImportError:
        print("loader torch: not installed (pip install 'emingest[torch]')")
        PatchDataset = None  # type: ignore[assignment,misc]
    if PatchDataset is not None:
        ds = PatchDataset([rid], patch_shape=patch, n_samples=n, seed=0, settings=settings)
        for workers in (0, 2):
            loader = ds.loader(batch_size=16, num_workers=workers, persistent_workers=workers > 0)
            for _ in loader:  # start the workers (and open the stores) once, outside the timing
                break

            def torch_loop(loader: object = loader) -> float:
                t0 = time.perf_counter()
                count = sum(int(batch.shape[0]) for batch in loader)  # type: ignore[attr-defined]
                return count / (time.perf_counter() - t0)

            loops[f"torch DataLoader, {workers} workers"] = torch_loop
    results: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            results[name].append(loop())
    for name, values in results.items():
        print(f"loader {name:<28}: {statistics.median(values):7.1f} patches/s (median of rounds)")


if __name__ == "__main__":
    main()
