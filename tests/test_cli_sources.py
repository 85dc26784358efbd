"""``emingest ingest idr|epfl|openorganelle|flyem`` (and ``openorganelle --list``) against the
replicas, through the same ``--config`` file a user would write."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emingest.cli import app
from emingest.config import load_settings
from emingest.config_toml import settings_to_toml
from emingest.records import read_record
from emingest.testing.idr import IMAGE_ID
from emingest.testing.replicas import ReplicaSet

runner = CliRunner()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaSet]:
    root = tmp_path_factory.mktemp("replicas")
    with ReplicaSet(root, only=("idr", "epfl", "openorganelle", "flyem")) as rs:
        yield rs


def config(tmp_path: Path, replicas: ReplicaSet) -> Path:
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [32, 32, 32]},
            "logging": {"log_dir": str(tmp_path / "logs")},
            "sources": replicas.source_settings(),
        },
    )
    path = tmp_path / "emingest.toml"
    path.write_text(settings_to_toml(settings))
    return path


def records(tmp_path: Path, source: str) -> list:
    data = tmp_path / "data" / source
    return [read_record(p) for p in sorted(data.glob("*/*.json")) if not p.name.startswith(".")]


def sha(array) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def test_ingest_idr(tmp_path: Path, replicas: ReplicaSet) -> None:
    cfg = config(tmp_path, replicas)
    result = runner.invoke(app, ["ingest", "idr", str(IMAGE_ID), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    [rec] = records(tmp_path, "idr")
    assert rec.status == "complete" and rec.source_id == str(IMAGE_ID)
    assert rec.sha256 == sha(replicas.replicas["idr"].expected_array(IMAGE_ID))
    none = runner.invoke(app, ["ingest", "idr", "--config", str(cfg)])
    assert none.exit_code == 2 and "--dataset" in none.output


def test_ingest_epfl(tmp_path: Path, replicas: ReplicaSet) -> None:
    cfg = config(tmp_path, replicas)
    result = runner.invoke(app, ["ingest", "epfl", "training", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    [rec] = records(tmp_path, "epfl")
    assert rec.name == "training" and rec.status == "complete"
    assert rec.sha256 == sha(replicas.replicas["epfl"].expected_array("training"))


def test_ingest_openorganelle_and_list(tmp_path: Path, replicas: ReplicaSet) -> None:
    oo = replicas.replicas["openorganelle"]
    cfg = config(tmp_path, replicas)
    listed = runner.invoke(app, ["ingest", "openorganelle", oo.dataset, "--list", "-c", str(cfg)])
    assert listed.exit_code == 0, listed.output
    assert f"{oo.dataset}/recon-2/em/fibsem-int16  int16" in listed.output
    assert not (tmp_path / "data" / "openorganelle").exists()  # --list writes nothing
    result = runner.invoke(
        app, ["ingest", "openorganelle", oo.dataset, "--source-levels", "2", "--config", str(cfg)]
    )
    assert result.exit_code == 0, result.output
    [rec] = records(tmp_path, "openorganelle")
    assert rec.status == "complete" and rec.dtype == "int16"
    assert rec.sha256 == sha(oo.expected_level(2))
    missing = runner.invoke(app, ["ingest", "openorganelle", "jrc_nope", "--list", "-c", str(cfg)])
    assert missing.exit_code == 1 and "jrc_nope" in missing.output


def test_ingest_flyem(tmp_path: Path, replicas: ReplicaSet) -> None:
    cfg = config(tmp_path, replicas)
    args = ["ingest", "flyem", "--box", "0:20,0:24,0:28", "--config", str(cfg)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    [rec] = records(tmp_path, "flyem")
    assert rec.status == "complete" and rec.volume_shape == [20, 24, 28]
    fe = replicas.replicas["flyem"]
    box = (slice(0, 20), slice(0, 24), slice(0, 28))
    assert rec.sha256 == sha(fe.expected(box))
