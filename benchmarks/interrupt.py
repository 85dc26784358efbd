"""Benchmark: how soon the first Ctrl-C stops ``emingest ingest`` (issue 10, part 5).

    .venv/bin/python benchmarks/interrupt.py --runs 3

A FlyEM replica answers every request after ``--latency`` seconds, so region tasks are slow and
many are queued; ``emingest ingest flyem`` runs in a subprocess with small tiles; when its log
says the volume started, SIGINT is sent. Printed: seconds from SIGINT to exit (the running
region tasks finish, the others are dropped), the exit code (130) and the record's status.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(latency: float, root: Path) -> tuple[float, int, str]:
    from emingest.records import read_record
    from emingest.testing.flyem import FlyEMReplica

    env = {k: v for k, v in os.environ.items() if not k.startswith("EMINGEST_")}
    env |= {
        "EMINGEST_PIPELINE__TILE_BYTES": str(64**3),
        "EMINGEST_PIPELINE__WORKERS": "2",
        "EMINGEST_SOURCES__FLYEM__MAX_PAYLOAD_BYTES": str(64**3),
    }
    with FlyEMReplica(root / "replica") as replica:
        replica.faults.latency_s = latency
        args = [sys.executable, "-m", "emingest.cli", "ingest", "flyem",
                "--box", "0:128,0:128,0:256", "--dvid-url", replica.dvid_url,
                "--data-root", str(root / "data"), "--chunk", "32", "32", "32"]  # fmt: skip
        proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                text=True)  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            if ": started," in line:
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        seconds = time.monotonic() - t0
    (record,) = (root / "data" / "flyem").glob("*/*.json")
    return seconds, proc.returncode, read_record(record).status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per request")
    args = parser.parse_args()
    stops = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, code, status = one_run(args.latency, Path(tmp))
        stops.append(seconds)
        print(f"run {i + 1}: stopped {seconds:.2f} s after SIGINT, exit {code}, record {status!r}")
    print(f"median {statistics.median(stops):.2f} s (request latency {args.latency} s, 2 workers)")


if __name__ == "__main__":
    main()
