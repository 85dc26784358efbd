"""The pipeline on Dask distributed: a real LocalCluster of worker processes, same output as
threads bit for bit, a worker killed mid-run, a driver killed and resumed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from emingest.config import Settings, load_settings
from emingest.errors import ConfigError
from emingest.pipeline import Pipeline, VolumeResult, jobs_for
from emingest.records import read_record, resolve_in_root
from emingest.sources import create_source

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(240)


def store_of(res: Any) -> Path:
    """The result's OME-Zarr store: records name it relative to the data root, which is
    two folders above the record (``<root>/<source>/<id>/<name>.json``)."""
    return resolve_in_root(res.record.local_paths.volume, res.record_path.parents[2])


def settings_for(root: Path, **pipeline: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root / "data"), "chunk_shape": [16, 16, 16]},
            "pipeline": {"workers": 2, "tile_bytes": 64 << 10, **pipeline},
            "logging": {"log_dir": str(root / "logs")},
        },
    )


def em_volume(path: Path, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)
    tifffile.imwrite(path, a, imagej=True, resolution=(100, 100), metadata={"spacing": 0.04,
                     "unit": "\\u00B5m", "axes": "ZYX"})  # fmt: skip
    return a


def ingest(settings: Settings, path: Path, progress: Any = None) -> VolumeResult:
    source = create_source("local", settings)
    with Pipeline(settings, progress=progress) as pipe:
        [res] = pipe.run(jobs_for(source, source.discover([str(path)])), force=True)
    return res


def store_files(store: Path) -> dict[str, str]:
    """Every file of the store (every chunk of every level, and the metadata): its sha256."""
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, dict[str, str]]:
    """A 40 x 100 x 120 nm-calibrated TIFF (10 x 40 x 40 nm: y, x are halved first) and its
    store as the thread executor writes it."""
    root = tmp_path_factory.mktemp("dask-volume")
    a = em_volume(root / "v.tif", (40, 100, 120), seed=11)
    res = ingest(settings_for(root / "threads"), root / "v.tif")
    assert res.status == "complete", res.status
    assert res.record.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    assert len(res.record.scales) >= 3
    return root / "v.tif", a, store_files(store_of(res))


def test_dask_local_cluster_output_is_identical_to_threads(tmp_path: Path, volume: Any) -> None:
    tif, a, expected = volume
    res = ingest(settings_for(tmp_path, executor="dask", scheduler="local"), tif)
    assert res.status == "complete", res.status
    rec = res.record
    assert rec.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    got = store_files(store_of(res))
    assert sorted(got) == sorted(expected)
    assert got == expected  # every chunk of every level, byte for byte
    assert rec.statistics is not None and rec.statistics.max == a.max()
    assert read_record(res.record_path).status == "complete"


class _KillAfter:
    """Progress that, after ``n`` finished tiles, lets the test kill a worker and holds the
    driver until it has: the kill is certain to come before the run ends."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0
        self.reached, self.killed = threading.Event(), threading.Event()

    def start(self, key: str, label: str, total_bytes: int) -> None:
        pass

    def advance(self, key: str, nbytes: int) -> None:
        self.count += 1
        if self.count == self.n:
            self.reached.set()
            assert self.killed.wait(60), "the test never killed the worker"

    def finish(self, key: str, status: str) -> None:
        pass


def test_a_worker_killed_mid_run_changes_nothing(tmp_path: Path, volume: Any) -> None:
    tif, _, expected = volume
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        assert len(pids) == 2
        settings = settings_for(tmp_path, executor="dask", scheduler=cluster.scheduler_address)
        progress = _KillAfter(3)
        results: list[VolumeResult] = []
        run = threading.Thread(target=lambda: results.append(ingest(settings, tif, progress)))
        run.start()
        assert progress.reached.wait(120), "no tile finished"
        # the victim holds tasks right now: they must be rerun elsewhere
        busy = {addr: keys for addr, keys in client.processing().items() if keys}
        assert busy, "no task was running when the worker was to be killed"
        victim_addr = sorted(busy)[0]
        victim = pids[victim_addr]
        os.kill(victim, signal.SIGKILL)
        progress.killed.set()
        run.join(180)
        assert not run.is_alive()
        with pytest.raises(ProcessLookupError):
            os.kill(victim, 0)  # the worker really died (its nanny starts a new process)
        assert victim not in client.run(os.getpid).values()
    [res] = results
    assert res.status == "complete", res.status
    assert store_files(store_of(res)) == expected


def _journal_lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_a_killed_driver_resumes_from_its_journal(tmp_path: Path, volume: Any) -> None:
    tif, a, expected = volume
    env = {
        **os.environ,
        "EMINGEST_PIPELINE__EXECUTOR": "dask",
        "EMINGEST_PIPELINE__WORKERS": "2",
        "EMINGEST_PIPELINE__TILE_BYTES": str(64 << 10),
        "EMINGEST_STORAGE__CHUNK_SHAPE": "[16,16,16]",
        "EMINGEST_LOGGING__LOG_DIR": str(tmp_path / "logs"),
    }
    cmd = [sys.executable, "-m", "emingest.cli", "ingest", "local", str(tif)]
    cmd += ["--data-root", str(tmp_path / "data")]
    source = create_source("local", settings_for(tmp_path))
    [ref] = source.discover([str(tif)])
    from emingest.pipeline import VolumePaths

    paths = VolumePaths.for_ref(tmp_path / "data", ref)
    # Its own session, so the driver and the cluster it started die together, as on a crash.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while _journal_lines(paths.journal.path) < 4 and proc.poll() is None:
        assert time.monotonic() < deadline, "ingest never started writing tiles"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert json.loads(paths.record.path.read_text())["status"] == "saving-data"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    rec = read_record(paths.record.path)
    assert rec.status == "complete"
    assert rec.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    assert store_files(paths.store.path) == expected


def test_missing_dask_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, executor="dask")  # settings refuse it too (test_config)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'emingest\[dask\]'$"):
        Pipeline(settings)


def test_unreachable_scheduler_is_a_config_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(
        tmp_path, executor="dask", scheduler=f"tcp://127.0.0.1:{port}", scheduler_timeout_s=2
    )
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        Pipeline(settings)


@pytest.fixture
def no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anonymous S3 only (the LocalCluster's workers inherit this environment)."""
    missing = str(tmp_path / "missing")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", missing)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_an_archive_pyramid_copied_on_dask_is_identical(tmp_path: Path, no_aws: None) -> None:
    """OpenOrganelle (remote, its own levels): copy tasks open the S3 reader in the worker."""
    from emingest.sources.openorganelle import OpenOrganelleSource
    from emingest.testing.openorganelle import OpenOrganelleReplica

    def run(root: Path, endpoint: str, dataset: str, **pipeline: Any) -> VolumeResult:
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(root), "chunk_shape": [32, 32, 32]},
                "pipeline": {"workers": 2, "tile_bytes": 256 << 10, **pipeline},
                "logging": {"log_dir": str(root / "logs")},
                "sources": {"openorganelle": {"endpoint_url": endpoint}},
            },
        )
        source = OpenOrganelleSource(settings)
        refs = source.discover([dataset], region="5:67,10:141,33:159")
        with Pipeline(settings) as pipe:
            [res] = pipe.run(jobs_for(source, refs))
        return res

    with OpenOrganelleReplica() as oo:
        threads = run(tmp_path / "threads", oo.endpoint_url, oo.dataset)
        dask = run(tmp_path / "dask", oo.endpoint_url, oo.dataset, executor="dask")
    assert threads.status == dask.status == "complete", (threads.status, dask.status)
    assert dask.record.sha256 == threads.record.sha256
    assert dask.record.statistics == threads.record.statistics
    expected = store_files(store_of(threads))
    assert len([k for k in expected if k.startswith("s1/")]) > 1
    assert store_files(store_of(dask)) == expected


class _UnregisteredSource:
    """A source object that is not in the registry: Dask workers could not reopen it."""

    name = "not-registered"

    def describe(self, ref: Any) -> Any:
        from emingest.sources.base import VolumeInfo

        return VolumeInfo(ref, (4, 8, 8), np.dtype("uint8"), None)

    def open(self, ref: Any) -> Any:
        raise AssertionError("never opened: the volume fails before")


def test_an_unregistered_source_fails_its_volume_clearly(tmp_path: Path) -> None:
    from emingest.pipeline import VolumeJob
    from emingest.sources.base import VolumeRef

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        settings = settings_for(tmp_path, executor="dask", scheduler=cluster.scheduler_address)
        ref = VolumeRef("not-registered", "x1", "vol")
        with Pipeline(settings) as pipe:
            [res] = pipe.run([VolumeJob(_UnregisteredSource(), ref)])  # type: ignore[arg-type]
    assert res.status.startswith("error: ConfigError: not-registered/x1/vol: Dask workers open")
    assert "unknown source 'not-registered'" in res.status


def test_executor_flags_reach_the_pipeline_and_an_unreachable_scheduler_exits_2(
    tmp_path: Path, volume: Any
) -> None:
    """``--executor dask --scheduler ADDRESS`` on the command line: nothing listens on port 9
    of 127.0.0.1, so the run stops at once with one line and exit 2, no traceback."""
    from typer.testing import CliRunner

    from emingest.cli import app

    tif, _, _ = volume
    args = ["ingest", "local", str(tif), "--data-root", str(tmp_path / "data")]
    env = {"EMINGEST_PIPELINE__SCHEDULER_TIMEOUT_S": "2"}
    bad = CliRunner().invoke(
        app, [*args, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], env=env
    )
    assert bad.exit_code == 2, bad.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in bad.output
    assert "Traceback" not in bad.output
    unknown = CliRunner().invoke(app, [*args, "--executor", "spark"])
    assert unknown.exit_code == 2 and "executor" in unknown.output
