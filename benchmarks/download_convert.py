"""Benchmark: a file archive over loopback HTTP (the EPFL replica), download + convert.

    .venv/bin/python benchmarks/download_convert.py --planes 256 --runs 3

In one run, medians of N runs of:
  (a) curl              -> plain download of volumedata.tif from the replica
  (b) emingest download -> the transport alone (Downloader.fetch: temp file, sha256, rename)
  (c) emingest ingest epfl volumedata -> download + OME-Zarr pyramid + record
  (d) emingest ingest local of the same TIFF already on disk (the local-file ingest)
Targets (issue 4): (b) >= 0.5 x (a); (c) >= 0.6 x (d). The replica is Python's http.server on
the same two cores, so absolute figures rank clients, they do not measure a network.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--planes", type=int, default=256, help="z size of volumedata (1536x2048)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("bench-out"))
    args = ap.parse_args()

    from emingest.config import load_settings
    from emingest.testing.epfl import EPFLReplica
    from emingest.transports import TransportSettings
    from emingest.transports.download import Downloader

    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    shape = (args.planes, 1536, 2048)
    t0 = time.perf_counter()
    replica = EPFLReplica(work / "replica", volume_shape=shape, subvolume_shape=(8, 64, 64))
    print(f"# replica files written in {time.perf_counter() - t0:.1f} s", flush=True)
    nbytes = shape[0] * shape[1] * shape[2]
    rows: dict[str, list[float]] = {k: [] for k in ("curl", "download", "ingest", "local")}
    with replica:
        url = replica.file_url("volumedata")
        local_tiff = replica.file_path("volumedata")
        ts = TransportSettings()
        env_cmd = [sys.executable, "-m", "emingest.cli"]
        for run in range(args.runs):
            out = work / f"curl-{run}.tif"
            rows["curl"].append(
                _timed(
                    lambda out=out: subprocess.run(
                        ["curl", "-sSf", "-o", str(out), url], check=True
                    )
                )
            )
            out.unlink()
            cache = work / f"cache-{run}"
            with Downloader(ts, cache) as dl:
                rows["download"].append(_timed(lambda dl=dl: dl.fetch(url)))
            shutil.rmtree(cache)
            data = work / f"data-{run}"
            rows["ingest"].append(
                _timed(
                    lambda data=data: subprocess.run(
                        [
                            *env_cmd,
                            "ingest",
                            "epfl",
                            "volumedata",
                            "--base-url",
                            replica.base_url,
                            "--data-root",
                            str(data),
                            "--force",
                        ],
                        check=True,
                        capture_output=True,
                    )
                )
            )
            shutil.rmtree(data)
            rows["local"].append(
                _timed(
                    lambda data=data: subprocess.run(
                        [
                            *env_cmd,
                            "ingest",
                            "local",
                            str(local_tiff),
                            "--data-root",
                            str(data),
                            "--force",
                        ],
                        check=True,
                        capture_output=True,
                    )
                )
            )
            shutil.rmtree(data)
    shutil.rmtree(work)
    del load_settings
    print(f"# volume {shape} uint8 = {nbytes / 2**20:.0f} MiB, median of {args.runs}")
    med = {k: statistics.median(v) for k, v in rows.items()}
    labels = {
        "curl": "(a) curl download",
        "download": "(b) emingest download (transport)",
        "ingest": "(c) emingest ingest epfl (download+convert)",
        "local": "(d) emingest ingest local (same TIFF)",
    }
    for k, label in labels.items():
        print(f"{label:<46} {nbytes / med[k] / 1e6:8.1f} MB/s  {med[k]:6.2f} s")
    print(f"download / curl: {med['curl'] / med['download']:.2f}x  (target >= 0.5)")
    print(f"ingest epfl / ingest local: {med['local'] / med['ingest']:.2f}x  (target >= 0.6)")


if __name__ == "__main__":
    main()
