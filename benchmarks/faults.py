"""Figures for issue 11's faults: how fast and how cheaply they are refused.

* the deflate bomb (a ~200-byte TIFF claiming 1e6 x 1e6 uint8): seconds to the record's error
  and the child's peak RSS, through ``Pipeline`` on the local source;
* a download onto a full disk (a 2 MiB tmpfs, a 16 MiB file on the loopback HTTP replica, six
  attempts with 1 s backoff configured): seconds to the error and GETs sent. Needs root for the
  mount; skipped otherwise.

    .venv/bin/python benchmarks/faults.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emingest.errors import LocalStorageError
from emingest.testing.hostile import deflate_bomb
from emingest.testing.http import HTTPReplica
from emingest.transports import Downloader, TransportSettings

_CHILD = """
import json, resource, sys
from emingest.config import load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources import create_source
settings = load_settings(environ={}, overrides={"storage": {"data_root": sys.argv[2]}})
source = create_source("local", settings)
(ref,) = source.discover([sys.argv[1]])
with Pipeline(settings) as pipe:
    (result,) = pipe.run([VolumeJob(source, ref)])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"status": result.status, "peak": peak}))
"""


def bomb(tmp: Path) -> None:
    path = deflate_bomb(tmp / "bomb.tif")
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(tmp / "data")],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.monotonic() - t0
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"deflate bomb ({path.stat().st_size} B on disk, claims 1e6 x 1e6): refused in "
        f"{seconds:.2f} s (process start included), peak RSS {answer['peak'] / 2**20:.0f} MiB"
    )
    print(f"  record: {answer['status'][:120]}...")


def full_disk(tmp: Path) -> None:
    disk = tmp / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]).returncode:
        print("full disk: skipped (cannot mount a tmpfs here)")
        return
    try:
        served = tmp / "served"
        served.mkdir()
        (served / "f.bin").write_bytes(os.urandom(16 << 20))
        replica = HTTPReplica()
        replica.serve_tree("/files", served)
        with replica:
            settings = TransportSettings(attempts=6, backoff_initial_s=1.0)
            t0 = time.monotonic()
            try:
                with Downloader(settings, disk / "cache") as down:
                    down.fetch(f"{replica.url}/files/f.bin")
            except LocalStorageError as err:
                seconds = time.monotonic() - t0
                gets = sum(1 for m, _, _ in replica.request_log if m == "GET")
                print(
                    f"full disk: 16 MiB download onto 2 MiB: error in {seconds:.2f} s, {gets} GET"
                )
                print(f"  {str(err)[:160]}...")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        bomb(Path(tmp))
        full_disk(Path(tmp))
