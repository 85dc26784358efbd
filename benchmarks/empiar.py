"""Benchmark: EMPIAR-11759 from the loopback replica, download + convert vs curl download alone.

    .venv/bin/python benchmarks/empiar.py                       # 16 slices of 2048 x 2048
    .venv/bin/python benchmarks/empiar.py --full                # the real 5500 x 5496 slices

Medians of N runs of:
  (a) emingest  EmpiarSource + Pipeline: listing, parallel download (8 connections), DM3 parse,
                z-stack to OME-Zarr with pyramid, sha256 of every file and of the volume
  (b) curl -Z   the same 16 files, 8 in parallel (``curl --parallel``), nothing else
  (c) curl      the same files one after the other
Loopback HTTP, so this measures our overhead over a plain download, not EBI's throughput.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_emingest(replica, work: Path, workers: int) -> float:
    from emingest.config import load_settings
    from emingest.pipeline import Pipeline, VolumeJob
    from emingest.sources.empiar import EmpiarSource

    shutil.rmtree(work, ignore_errors=True)
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(work)},
            "pipeline": {"workers": workers},
            "sources": {
                "empiar": {
                    "api_url": replica.api_url,
                    "files_url": replica.files_http_url,
                    "fallback_files_url": replica.files_ftp_url,
                }
            },
        },
    )
    t0 = time.perf_counter()
    source = EmpiarSource(settings)
    refs = source.discover(["EMPIAR-11759"])
    with Pipeline(settings) as pipe:
        results = pipe.run([VolumeJob(source, r) for r in refs])
    dt = time.perf_counter() - t0
    bad = [r.status for r in results if not r.ok]
    if bad:
        raise SystemExit(f"emingest failed: {bad}")
    return dt


def run_curl(replica, work: Path, parallel: bool) -> float:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    urls = [f"{replica.files_http_url}/11759/data/{n}" for n in replica.dm3_names]
    cmd = ["curl", "-s", "--no-progress-meter", "-f", "--remote-name-all", *urls]
    if parallel:
        cmd[1:1] = ["-Z", "--parallel-max", "8"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=work, check=True)
    return time.perf_counter() - t0


def main() -> None:
    from emingest.testing.empiar import FULL_SLICE_SHAPE, EmpiarReplica

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="real 5500 x 5496 slices (480 MB)")
    ap.add_argument("--size", type=int, default=2048, help="slice height = width otherwise")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    shape = FULL_SLICE_SHAPE if args.full else (args.size, args.size)
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmpiarReplica(Path(tmp) / "replica", slice_shape=shape) as replica,
    ):
        nbytes = sum(replica.file_path("11759", n).stat().st_size for n in replica.dm3_names)
        work = Path(tmp) / "work"
        rows = {}
        have_curl = shutil.which("curl") is not None
        for label, fn in [
            ("emingest (download + convert)", lambda: run_emingest(replica, work, args.workers)),
            ("curl -Z (download only, 8 parallel)", lambda: run_curl(replica, work, True)),
            ("curl (download only, sequential)", lambda: run_curl(replica, work, False)),
        ]:
            if label.startswith("curl") and not have_curl:
                continue
            rows[label] = statistics.median(fn() for _ in range(args.runs))
    print(f"# EMPIAR-11759 replica: 16 x {shape[0]} x {shape[1]} uint8 DM3, {nbytes / 1e6:.0f} MB")
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, Python "
        f"{sys.version.split()[0]}, median of {args.runs}"
    )
    print("| approach | seconds | MB/s |")
    print("|---|---:|---:|")
    for label, dt in rows.items():
        print(f"| {label} | {dt:.2f} | {nbytes / 1e6 / dt:.0f} |")


if __name__ == "__main__":
    main()
