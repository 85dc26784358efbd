"""The pipeline with ``storage.data_root = "s3://bucket/prefix"`` on moto's S3 server: the same
bytes as a local ingest, on threads and on Dask, resumable after a SIGKILL, and a clear error
when the bucket cannot be reached."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from emingest.catalog import open_catalog
from emingest.config import Settings, load_settings
from emingest.layout import VolumePaths
from emingest.pipeline import Pipeline, jobs_for
from emingest.records import read_record
from emingest.sources import create_source
from emingest.testing.s3_root import CREDENTIALS, S3DataRoot

PIPELINE = {"workers": 2, "tile_bytes": 64 << 10}
STORAGE = {"chunk_shape": [16, 32, 32]}


def em_like(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(128, 30, shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def _local_settings(root: Path, **pipeline: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root), **STORAGE},
            "pipeline": {**PIPELINE, **pipeline},
            "logging": {"log_dir": str(root / "logs")},
        },
    )


def _ingest(settings: Settings, tif: Path) -> Any:
    source = create_source("local", settings)
    with Pipeline(settings) as pipe:
        [result] = pipe.run(jobs_for(source, source.discover([str(tif)])))
    assert result.status == "complete", result.error
    return result


def _local_files(store: Path) -> dict[str, bytes]:
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file()
    }


def _s3_files(s3: S3DataRoot, store_key: str) -> dict[str, bytes]:
    prefix = f"{s3.prefix}/{store_key}/"
    keys = s3.object_keys()
    return {k[len(prefix) :]: s3.get(k) for k in keys if k.startswith(prefix)}


@pytest.mark.parametrize("executor", ["threads", "dask"])
def test_an_s3_data_root_holds_the_same_bytes_as_a_local_one(
    tmp_path: Path, s3_root: S3DataRoot, executor: str
) -> None:
    a = em_like((40, 80, 96))
    tif = tmp_path / "vol.tif"
    tifffile.imwrite(tif, a)
    local = _ingest(_local_settings(tmp_path / "local"), tif)
    s3_settings = s3_root.settings(
        tmp_path / "work",
        {"storage": STORAGE, "pipeline": {**PIPELINE, "executor": executor}},
    )
    remote = _ingest(s3_settings, tif)

    rec = remote.record
    assert str(remote.record_path).startswith(f"s3://{s3_root.bucket}/{s3_root.prefix}/local/")
    # every chunk of every level, and the NGFF metadata, byte for byte
    local_store = Path(local.record_path).parent / Path(rec.local_paths.volume).name
    expected = _local_files(local_store)
    got = _s3_files(s3_root, rec.local_paths.volume)
    assert set(got) == set(expected) and len(expected) > 20
    assert all(got[k] == expected[k] for k in expected)
    assert rec.sha256 == local.record.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    assert rec.statistics == local.record.statistics
    assert rec.file_size_bytes == local.record.file_size_bytes == sum(map(len, got.values()))
    assert rec.local_paths == local.record.local_paths  # relative to each data root
    # the sidecar is an object beside the store; the journal is gone; nothing else is there
    sidecar = json.loads(s3_root.get(f"{s3_root.prefix}/{rec.local_paths.metadata}"))
    assert sidecar["status"] == "complete" and sidecar["sha256"] == rec.sha256
    keys = s3_root.object_keys()
    outside = [k for k in keys if not k.startswith(f"{s3_root.prefix}/{rec.local_paths.volume}/")]
    assert outside == [f"{s3_root.prefix}/{rec.local_paths.metadata}"]
    # machine-local state stays in work_dir: the volume lock and the SQLite catalog
    assert (tmp_path / "work" / "catalog.sqlite").is_file()
    assert list((tmp_path / "work" / ".locks").rglob("*.lock"))
    # the catalog rebuilt from the bucket lists the record by its s3:// URL
    with open_catalog(tmp_path / "synced.sqlite") as catalog:
        sync = catalog.sync(s3_settings.storage.root())
        [row] = catalog.query()
    assert sync.indexed == 1 and not sync.skipped
    assert row.record_path == str(remote.record_path) and row.sha256 == rec.sha256

    # a second run finds it complete in the bucket and skips it
    assert _ingest_status(s3_settings, tif) == "skipped"


def _ingest_status(settings: Settings, tif: Path) -> str:
    source = create_source("local", settings)
    with Pipeline(settings) as pipe:
        [result] = pipe.run(jobs_for(source, source.discover([str(tif)])))
    return result.status


def _journal_tiles(s3: S3DataRoot, key: str) -> int:
    from botocore.exceptions import ClientError

    try:
        return len(s3.get(key).decode().splitlines()) - 1
    except ClientError:  # not written yet
        return 0


@pytest.mark.slow
def test_a_killed_ingest_to_s3_resumes_without_rewriting_journaled_tiles(
    tmp_path: Path, s3_root: S3DataRoot
) -> None:
    a = em_like((64, 256, 256), seed=5)
    tif = tmp_path / "big.tif"
    tifffile.imwrite(tif, a)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EMINGEST_"))},
        **CREDENTIALS,
        # the standard variable of AWS's SDKs names the endpoint
        "AWS_ENDPOINT_URL": s3_root.endpoint_url,
        "EMINGEST_STORAGE__WORK_DIR": str(tmp_path / "work"),
        "EMINGEST_STORAGE__CHUNK_SHAPE": "[16,32,32]",
        "EMINGEST_PIPELINE__TILE_BYTES": str(64 << 10),
        "EMINGEST_PIPELINE__WORKERS": "1",
        "EMINGEST_PIPELINE__JOURNAL_CHECKPOINT_S": "0",  # every tile: the test waits on it
    }
    cmd = [sys.executable, "-m", "emingest.cli", "ingest", "local", str(tif)]
    cmd += ["--data-root", s3_root.url]
    settings = s3_root.settings(tmp_path / "work", {"storage": STORAGE})
    [ref] = create_source("local", settings).discover([str(tif)])
    paths = VolumePaths.for_ref(settings.storage.root(), ref)
    journal_key = f"{s3_root.prefix}/{paths.journal.key}"

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _journal_tiles(s3_root, journal_key) < 6 and proc.poll() is None:
        assert time.monotonic() < deadline, "the ingest never journaled a tile"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill: {stderr.decode()}"
    record = json.loads(s3_root.get(f"{s3_root.prefix}/{paths.record.key}"))
    assert record["status"] == "saving-data"
    journal = s3_root.get(journal_key).decode().splitlines()
    done = [json.loads(line) for line in journal[1:] if line.strip()]
    level0 = [d["t"] for d in done if d["l"] == 0]
    assert level0, journal
    # the killed run's lease is still there; the re-run on this host takes it over at once
    # (its PID is gone) instead of waiting for it to expire
    lease = f"{s3_root.prefix}/.locks/{paths.record.key.removesuffix('.json')}.lease"
    assert lease in s3_root.object_keys()

    s3_root.replica.clear_request_log()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr and "took over the lease" in rerun.stderr
    puts = [path for method, path, _ in s3_root.replica.request_log if method == "PUT"]
    # a journaled tile's chunks are not written again: tile (0, 0, 0) is z 0:16, y 0:32,
    # x 0:256 at this budget, so chunk c/0/0/0 of s0 belongs to it
    assert [0, 0, 0] in level0
    first_chunk = f"/{s3_root.bucket}/{s3_root.prefix}/{paths.store.key}/s0/c/0/0/0"
    assert first_chunk not in puts
    assert any("/s0/c/" in p for p in puts), "the rest of level 0 was written on resume"
    resumed = read_record(paths.record)
    assert resumed.status == "complete"
    assert resumed.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    remaining = s3_root.object_keys()
    assert journal_key not in remaining and lease not in remaining

    import tensorstore as ts

    level0_array = ts.open({"driver": "zarr3", "kvstore": (paths.store / "s0").kvstore()}).result()
    np.testing.assert_array_equal(level0_array.read().result(), a)


def test_an_unreachable_bucket_fails_the_volume_with_one_clear_line(tmp_path: Path) -> None:
    tif = tmp_path / "v.tif"
    tifffile.imwrite(tif, em_like((8, 16, 16)))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EMINGEST_"))},
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # the discard port: connection refused
        "EMINGEST_STORAGE__WORK_DIR": str(tmp_path / "work"),
        "EMINGEST_STORAGE__S3_MAX_ATTEMPTS": "1",
    }
    cmd = [sys.executable, "-m", "emingest.cli", "ingest", "local", str(tif)]
    cmd += ["--data-root", "s3://bucket/prefix"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "s3://bucket/prefix/local/" in run.stderr
    assert "127.0.0.1:9" in run.stderr
    assert "Traceback" not in run.stderr
