"""The installed ``emingest`` command, run as users run it: the demo, a killed and resumed
``ingest local``, ``run`` with a configuration file; and proof that the demo stays on 127.0.0.1.

These run the console script that ``pip install`` put next to the interpreter
(``.venv/bin/emingest``), in a child process with a clean environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import tifffile
import zarr

from emingest.config import load_settings
from emingest.config_toml import settings_to_toml
from emingest.records import read_record, resolve_in_root
from emingest.sources import create_source
from emingest.testing.replicas import ReplicaSet

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "schemas" / "record.schema.json").read_text(encoding="utf-8"))

pytestmark = pytest.mark.slow


def installed_emingest() -> str:
    """The console script beside this interpreter: what ``pip install`` made."""
    found = shutil.which("emingest", path=str(Path(sys.executable).parent))
    assert found, f"no emingest script beside {sys.executable}: is the package installed?"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without our settings or proxies, so only what the test passes counts."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EMINGEST_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    return {**env, "NO_PROXY": "127.0.0.1,localhost", **extra}


def records_under(data: Path) -> list[Path]:
    """Every record sidecar under a data root (not the caches, not the catalog report)."""
    return [
        p
        for p in data.glob("*/**/*.json")
        if not any(part.startswith(".") for part in p.relative_to(data).parts)
        and ".ome.zarr" not in str(p.relative_to(data))
        and not p.name.startswith("metadata_catalog_")
    ]


def check_records(data: Path, expected_sources: set[str]) -> list[dict[str, Any]]:
    paths = records_under(data)
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    assert docs, f"no records under {data}"
    for path, doc in zip(paths, docs, strict=True):
        jsonschema.validate(doc, SCHEMA)  # the published schema, not our model
        assert doc["status"] == "complete", (path, doc["status"])
        # record paths are relative to the data root (a moved data root stays valid)
        assert len(doc["sha256"]) == 64 and (data / doc["local_paths"]["volume"]).is_dir()
    assert {d["source"] for d in docs} == expected_sources
    return docs


def test_demo_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    done = subprocess.run(
        [installed_emingest(), "demo", "--root", str(root)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = root / "data"
    docs = check_records(data, {"idr", "empiar", "epfl", "openorganelle", "flyem"})
    assert (data / "catalog.sqlite").is_file()
    [report] = data.glob("**/metadata_catalog_*.json")
    assert f"Catalog: {data / 'catalog.sqlite'} ({len(docs)} records" in done.stdout
    assert f"Report: {report}" in done.stdout
    assert json.loads(report.read_text(encoding="utf-8"))  # a JSON document, not empty


# Runs the installed script under an audit hook that notes every socket connection and
# name lookup; what it saw is written to argv[1] at exit.
AUDITED = r"""
import json, runpy, sys
log_path, script = sys.argv[1], sys.argv[2]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost", b"127.0.0.1", b"localhost"}
seen = {"loopback": 0, "outside": []}
def hook(event, args):
    if event == "socket.connect":
        addr = args[1]
        if isinstance(addr, tuple):
            if addr[0] in LOOPBACK:
                seen["loopback"] += 1
            else:
                seen["outside"].append(["connect", repr(addr)])
    elif event == "socket.getaddrinfo" and args[0] is not None and args[0] not in LOOPBACK:
        seen["outside"].append(["getaddrinfo", repr(args[0])])
sys.addaudithook(hook)
sys.argv = [script, *sys.argv[3:]]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    with open(log_path, "w") as fh:
        json.dump(seen, fh)
"""


def test_the_demo_connects_to_nothing_beyond_loopback(tmp_path: Path) -> None:
    """Every setting that names a host points at a replica: not one connection or name lookup
    of the demo process leaves 127.0.0.1. (Python sockets only: tensorstore's own HTTP client
    is C++ and invisible to audit hooks; its URLs come from the same settings.)"""
    seen_path = tmp_path / "sockets.json"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            AUDITED,
            str(seen_path),
            installed_emingest(),
            "demo",
            "--root",
            str(tmp_path / "demo"),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    seen = json.loads(seen_path.read_text())
    assert seen["outside"] == []
    assert seen["loopback"] > 10  # the hook saw the demo's own connections
    assert done.returncode == 0, done.stdout + done.stderr


def test_replica_settings_name_only_loopback_hosts(tmp_path: Path) -> None:
    """Every setting of every source that holds a URL points at 127.0.0.1 once the replicas'
    settings are applied, fallbacks included: a failed replica listing cannot reach out."""
    with ReplicaSet(tmp_path / "replicas") as rs:
        settings = load_settings(environ={}, overrides={"sources": rs.source_settings()})
        archives = list(rs.members)
    checked = {}
    for name in archives:
        options = create_source(name, settings).options.model_dump(mode="json")
        checked |= {
            f"{name}.{key}": value
            for key, value in options.items()
            if isinstance(value, str) and "://" in value
        }
    assert "empiar.fallback_files_url" in checked and "openorganelle.endpoint_url" in checked
    outside = {
        k: v
        for k, v in checked.items()
        if not v.startswith(("http://127.0.0.1:", "ftp://127.0.0.1:"))
    }
    assert outside == {}


def _journal_lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


def test_ingest_local_killed_then_resumed_gives_the_same_sha256(tmp_path: Path) -> None:
    """SIGKILL once the child has journaled its first tiles (the journal is its signal), then
    the same command again: the record's sha256 is the input's."""
    a = np.random.default_rng(11).integers(0, 255, (128, 256, 320), dtype=np.uint8)
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, a)
    data = tmp_path / "data"
    env = clean_env(
        EMINGEST_PIPELINE__TILE_BYTES=str(128 << 10),
        EMINGEST_PIPELINE__WORKERS="1",
        EMINGEST_STORAGE__CHUNK_SHAPE="[16,16,16]",
        EMINGEST_LOGGING__LOG_DIR=str(tmp_path / "logs"),
    )
    cmd = [installed_emingest(), "ingest", "local", str(src), "--data-root", str(data)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journals: list[Path] = []
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        journals = list(data.glob("local/*/.*journal*")) if data.exists() else []
        if journals and _journal_lines(journals[0]) >= 2:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it was killed"
    [record_path] = [p for p in records_under(data)]
    assert json.loads(record_path.read_text())["status"] == "saving-data"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    record = read_record(record_path)
    assert record.status == "complete"
    assert record.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    store = resolve_in_root(record.local_paths.volume, data)
    np.testing.assert_array_equal(zarr.open_group(store)["s0"][:], a)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaSet]:
    with ReplicaSet(tmp_path_factory.mktemp("replicas"), only=("epfl", "flyem")) as rs:
        yield rs


def test_run_with_a_config_file(tmp_path: Path, replicas: ReplicaSet) -> None:
    from emingest.cli import demo_datasets

    data = tmp_path / "data"
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(data), "chunk_shape": [32, 32, 32]},
            "logging": {"log_dir": str(tmp_path / "logs")},
            "sources": replicas.source_settings(),
        },
    )
    datasets = [d for d in demo_datasets(settings) if d.source in ("epfl", "flyem")]
    cfg = tmp_path / "run.toml"
    cfg.write_text(settings_to_toml(settings.model_copy(update={"datasets": datasets})))
    done = subprocess.run(
        [installed_emingest(), "run", str(cfg)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    docs = check_records(data, {"epfl", "flyem"})
    by_name = {d["name"]: d for d in docs if d["source"] == "epfl"}
    epfl = replicas.replicas["epfl"]
    for name, doc in by_name.items():
        expected = epfl.expected_array(name)
        assert doc["sha256"] == hashlib.sha256(expected.tobytes()).hexdigest(), name
