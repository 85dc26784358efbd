"""Served data for the serve tests: the EPFL replica's five files ingested (sharded, small
chunks so there is a pyramid), and ``emingest serve``'s app under a real uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emingest.config import Settings, load_settings
from emingest.pipeline import Pipeline, jobs_for
from emingest.serve.loopback import ApiServer
from emingest.sources import create_source
from emingest.testing.epfl import EPFLReplica


def served_settings(root: Path, replica: EPFLReplica, **serve: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {
                "data_root": str(root / "data"),
                "chunk_shape": [8, 32, 32],
                "shard_shape": [8, 64, 64],
            },
            "logging": {"log_dir": str(root / "logs")},
            "pipeline": {"workers": 2},
            "sources": {"epfl": {"base_url": replica.base_url}},
            "serve": serve,
        },
    )


@pytest.fixture(scope="session")
def make_settings() -> Any:
    """``served_settings`` for tests that build their own data root."""
    return served_settings


@pytest.fixture(scope="session")
def epfl_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EPFLReplica]:
    with EPFLReplica(
        tmp_path_factory.mktemp("epfl"), volume_shape=(24, 160, 192), subvolume_shape=(16, 64, 96)
    ) as replica:
        yield replica


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, epfl_replica: EPFLReplica) -> Settings:
    """Settings whose data root holds the five EPFL volumes, complete and indexed."""
    settings = served_settings(tmp_path_factory.mktemp("served"), epfl_replica)
    source = create_source("epfl", settings)
    try:
        refs = source.discover([])
        with Pipeline(settings) as pipe:
            results = pipe.run(jobs_for(source, refs))
    finally:
        source.close()
    assert [r.status for r in results] == ["complete"] * 5
    return settings


@pytest.fixture(scope="session")
def api(served: Settings) -> Iterator[ApiServer]:
    with ApiServer(served) as server:
        yield server


@pytest.fixture(scope="session")
def embedded(served: Settings) -> Settings:
    """The served volumes embedded with the default embedder, through the `emingest embed`
    command of issue 13 (only where ``emingest.vectors`` is installed)."""
    pytest.importorskip("emingest.vectors", reason="emingest.vectors is not on this branch yet")
    from typer.testing import CliRunner

    from emingest.cli import app

    env = {
        "EMINGEST_STORAGE__DATA_ROOT": str(served.storage.data_root),
        "EMINGEST_LOGGING__LOG_DIR": str(served.logging.log_dir),
    }
    result = CliRunner().invoke(app, ["embed", "--all"], env=env)
    assert result.exit_code == 0, result.output
    return served
