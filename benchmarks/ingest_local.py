"""Benchmark: a 2 GiB EM-like multi-page TIFF into OME-Zarr, against the usual alternatives.

    ./run.sh bench                      # 2 GiB, 3 runs each
    .venv/bin/python benchmarks/ingest_local.py --size-gib 0.5 --runs 3

In one run, medians of N runs of:
  (a) emingest ingest local  -> OME-Zarr v3, pyramid, sha256 + statistics (the CLI, as users run it)
  (b) naive                  -> tifffile.imread, np.save, sha256 of the array
  (c) ome-zarr-py            -> tifffile.imread, ome_zarr.writer.write_image (default pyramid)
  (d) cp                     -> a plain copy of the TIFF
Each approach runs in a fresh process whose peak RSS is reported; every timing ends with
``sync`` so page-cache writes are counted. The TIFF is read from the page cache in every case
(it was just written or read), which is the same for all four.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MiB = 1 << 20


def make_tiff(path: Path, size_gib: float) -> tuple[int, int, int]:
    from emingest.testing.synthetic import SyntheticEM, write_tiff_stack

    y = x = 2048
    z = max(1, round(size_gib * (1 << 30) / (y * x)))
    shape = (z, y, x)
    marker = path.with_suffix(".shape")
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == list(shape):
        return shape
    t0 = time.perf_counter()
    write_tiff_stack(path, SyntheticEM(shape, "uint8", seed=7))
    path.with_suffix(".shape").write_text(json.dumps(list(shape)))
    print(f"# wrote {path} {shape} in {time.perf_counter() - t0:.1f} s", flush=True)
    return shape


def _sync() -> None:
    os.sync()


def run_one(approach: str, tiff: Path, out: Path) -> None:
    """Runs in a child process: does one approach, prints JSON with seconds and peak RSS."""
    import hashlib

    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    t0 = time.perf_counter()
    if approach == "emingest":
        cmd = [
            sys.executable,
            "-m",
            "emingest.cli",
            "ingest",
            "local",
            str(tiff),
            "--data-root",
            str(out),
            "--force",
        ]
        subprocess.run(
            cmd,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "EMINGEST_LOGGING__LOG_DIR": str(out / "logs")},
        )
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    elif approach == "naive":
        import numpy as np
        import tifffile

        a = tifffile.imread(tiff)
        np.save(out, a)
        hashlib.sha256(a.tobytes()).hexdigest()
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elif approach == "ome-zarr-py":
        import tifffile
        import zarr
        from ome_zarr.writer import write_image

        a = tifffile.imread(tiff)
        group = zarr.open_group(str(out), mode="w")
        write_image(a, group, axes="zyx")
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elif approach == "cp":
        subprocess.run(["cp", str(tiff), str(out)], check=True)
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    else:
        raise SystemExit(f"unknown approach {approach}")
    _sync()
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rss_mib": rss_kib / 1024}))


def measure(approach: str, tiff: Path, workdir: Path) -> dict[str, float]:
    out = workdir / f"out-{approach}"
    if approach == "naive":
        out = out.with_suffix(".npy")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", approach, str(tiff), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    _sync()  # the deletion's writeback is not charged to the next run
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("bench-out"))
    ap.add_argument("--approaches", default="emingest,naive,ome-zarr-py,cp")
    ap.add_argument(
        "--ome-zarr-size-gib",
        type=float,
        default=0.5,
        help="ome-zarr-py holds the volume and its pyramid in memory (~11x the TIFF here), so "
        "2 GiB would need ~23 GiB: it runs on a smaller TIFF from the same generator",
    )
    ap.add_argument("--child", nargs=3, metavar=("APPROACH", "TIFF", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_one(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    tiff = args.workdir / f"em_{args.size_gib:g}gib.tif"
    shape = make_tiff(tiff, args.size_gib)
    nbytes = shape[0] * shape[1] * shape[2]
    print(
        f"# machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; volume {shape} uint8 = {nbytes / MiB:.0f} MiB; "
        f"median of {args.runs}"
    )
    rows = {}
    small = args.workdir / f"em_{args.ome_zarr_size_gib:g}gib.tif"
    small_shape = make_tiff(small, args.ome_zarr_size_gib)
    for approach in args.approaches.split(","):
        src, size = (small, small_shape) if approach == "ome-zarr-py" else (tiff, shape)
        nbytes = size[0] * size[1] * size[2]
        runs = [measure(approach, src, args.workdir) for _ in range(args.runs)]
        failed = [r for r in runs if "error" in r]
        if failed:
            print(f"{approach:<12} FAILED: {failed[0]['error']}", flush=True)
            continue
        secs = statistics.median(r["seconds"] for r in runs)
        rss = max(r["rss_mib"] for r in runs)
        rows[approach] = (nbytes / secs / 1e6, secs, rss)
        print(
            f"{approach:<12} {nbytes / secs / 1e6:8.1f} MB/s  {secs:7.2f} s  "
            f"peak RSS {rss:8.0f} MiB  (runs: "
            + ", ".join(f"{r['seconds']:.2f}" for r in runs)
            + ")",
            flush=True,
        )
    if "emingest" in rows and "ome-zarr-py" in rows:
        print(f"emingest / ome-zarr-py speed: {rows['emingest'][0] / rows['ome-zarr-py'][0]:.2f}x")
    if "emingest" in rows and "naive" in rows:
        print(f"emingest / naive peak RSS: {rows['emingest'][2] / rows['naive'][2]:.2f}")


if __name__ == "__main__":
    main()
