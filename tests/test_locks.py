"""One writer per volume and per cached download, with real processes (fcntl.flock)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emingest.locks import download_lock_path, held, holder_pid, volume_lock_path
from emingest.testing.http import HTTPReplica

_INGEST = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from emingest.config import load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources import create_source
settings = load_settings(environ={}, overrides={
    "storage": {"data_root": sys.argv[2], "chunk_shape": [16, 64, 64]},
    "pipeline": {"workers": 2, "tile_bytes": 256 << 10},
})
source = create_source("local", settings)
(ref,) = source.discover([sys.argv[1]])
with Pipeline(settings) as pipe:
    (result,) = pipe.run([VolumeJob(source, ref)])
print(json.dumps({"status": result.status, "record": str(result.record_path)}))
"""

_HOLD = """
import sys, time
from emingest.locks import held
with held(sys.argv[1], what="test"):
    print("locked", flush=True)
    time.sleep(600)
"""


def volume(tmp_path: Path, shape: tuple[int, int, int] = (48, 256, 256)) -> tuple[Path, str]:
    data = np.random.default_rng(2).integers(0, 255, size=shape, dtype=np.uint8)
    path = tmp_path / "vol.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    return path, hashlib.sha256(data.tobytes()).hexdigest()


def start(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def answer(proc: subprocess.Popen[str]) -> tuple[dict[str, str], str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def test_two_processes_on_one_volume_do_the_work_once(tmp_path: Path) -> None:
    path, sha = volume(tmp_path)
    data = tmp_path / "data"
    first, second = start(_INGEST, str(path), str(data)), start(_INGEST, str(path), str(data))
    (a, a_log), (b, b_log) = answer(first), answer(second)
    assert sorted([a["status"], b["status"]]) == ["complete", "skipped"]
    waited = a_log if a["status"] == "skipped" else b_log
    worked = b_log if a["status"] == "skipped" else a_log
    assert "already complete, skipped" in waited
    assert "resuming" not in waited and "resuming" not in worked
    record = json.loads(Path(a["record"]).read_text())
    assert record["status"] == "complete" and record["sha256"] == sha


def test_a_second_run_waits_with_a_message_while_the_volume_is_held(tmp_path: Path) -> None:
    path, sha = volume(tmp_path, (8, 64, 64))
    data = tmp_path / "data"
    from emingest.config import load_settings
    from emingest.pipeline import VolumePaths
    from emingest.sources import create_source

    settings = load_settings(environ={}, overrides={"storage": {"data_root": str(data)}})
    (ref,) = create_source("local", settings).discover([str(path)])
    lock = volume_lock_path(data, VolumePaths.for_ref(data, ref).record.path)
    holder = start(_HOLD, str(lock))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        waiter = start(_INGEST, str(path), str(data))
        assert waiter.stderr is not None
        said = waiter.stderr.readline()  # blocks until the waiter logs something
        assert f"being ingested by PID {holder.pid}" in said
        time.sleep(0.5)
        assert waiter.poll() is None, "it waits while the lock is held"
        assert not (data / "local").exists(), "and has written nothing"
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock of a dead process
        holder.wait()
    result, _ = answer(waiter)
    assert result["status"] == "complete"
    assert json.loads(Path(result["record"]).read_text())["sha256"] == sha


def test_a_lock_left_by_a_killed_process_never_blocks(tmp_path: Path) -> None:
    lock = volume_lock_path(tmp_path / "data", tmp_path / "data" / "local" / "v" / "v.json")
    holder = start(_HOLD, str(lock))
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with held(lock, what="test", wait=False) as got:
        assert got is False  # held by the live process
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock.exists() and holder_pid(lock) == holder.pid  # the file is left behind
    with held(lock, what="test", wait=False) as got:
        assert got is True
    assert holder_pid(lock) == os.getpid()


_FETCH = """
import json, sys
from pathlib import Path
from emingest.transports import Downloader, TransportSettings
with Downloader(TransportSettings(parallel_segments=False), Path(sys.argv[2])) as down:
    got = down.fetch(sys.argv[1])
print(json.dumps({"sha256": got.sha256, "from_cache": got.from_cache}))
"""


@pytest.fixture
def slow_files(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "f.bin").write_bytes(np.random.default_rng(3).bytes(4 << 20))
    replica = HTTPReplica()
    replica.serve_tree("/files", root)
    replica.faults.latency_s = 1.0  # both processes ask while the first is still waiting
    with replica:
        yield replica, hashlib.sha256((root / "f.bin").read_bytes()).hexdigest()


def test_two_processes_download_one_file_once(tmp_path: Path, slow_files) -> None:
    replica, sha = slow_files
    url, cache = f"{replica.url}/files/f.bin", str(tmp_path / "cache")
    procs = [start(_FETCH, url, cache) for _ in range(2)]
    results = [answer(p)[0] for p in procs]
    assert [r["sha256"] for r in results] == [sha, sha]
    assert sorted(r["from_cache"] for r in results) == [False, True]
    assert [p for m, p, _ in replica.request_log if m == "GET"] == ["/files/f.bin"]
    assert download_lock_path(tmp_path / "cache" / "f.bin").exists()
