"""Shared test hygiene. Loopback servers live in each test module's own fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytest
import tifffile

from emingest.testing.openorganelle import S3Replica
from emingest.testing.postgres import PostgresServer, postgres_server
from emingest.testing.s3_root import CREDENTIALS, S3DataRoot, S3Ingested


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """The CLI configures the root logger (file + stderr); undo it so tests stay independent."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL 16 + pgvector server for the session (the pgserver wheel).

    Its folder is in the system temp folder, not pytest's: as root, pgserver runs the server
    as another user, who cannot enter pytest's private (0700) temp folders."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (pgvector extension created), dropped after it."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Replica]:
    """moto's S3 server (one per session; each test gets its own bucket)."""
    with S3Replica() as replica:
        yield replica


@pytest.fixture
def s3_root(s3_server: S3Replica, monkeypatch: pytest.MonkeyPatch) -> S3DataRoot:
    """A private bucket as an ``s3://`` data root, with the credentials in the environment."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return S3DataRoot.create(s3_server)


@pytest.fixture(scope="session")
def _s3_ingested(
    s3_server: S3Replica, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Ingested]:
    from emingest.catalog import record_id
    from emingest.pipeline import Pipeline, jobs_for
    from emingest.sources import create_source

    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        root = S3DataRoot.create(s3_server)
        folder = tmp_path_factory.mktemp("s3-ingested")
        array = np.random.default_rng(3).integers(0, 250, size=(20, 70, 90), dtype=np.uint8)
        tifffile.imwrite(folder / "cells.tif", array, photometric="minisblack")
        settings = root.settings(
            folder / "work",
            {
                "storage": {"chunk_shape": [8, 32, 32], "shard_shape": [8, 64, 64]},
                "pipeline": {"workers": 2},
                "logging": {"log_dir": str(folder / "logs")},
            },
        )
        source = create_source("local", settings)
        try:
            refs = source.discover([str(folder / "cells.tif")])
            with Pipeline(settings) as pipe:
                [result] = pipe.run(jobs_for(source, refs))
        finally:
            source.close()
        assert result.status == "complete", result.status
        assert result.record is not None
        yield S3Ingested(
            root=root,
            settings=settings,
            array=array,
            id=record_id(result.record),
            record_url=str(result.record_path),
            store_key=result.record.local_paths.volume,
        )


@pytest.fixture
def s3_ingested(_s3_ingested: S3Ingested, monkeypatch: pytest.MonkeyPatch) -> S3Ingested:
    """:class:`S3Ingested` (ingested once a session), the credentials in the environment."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return _s3_ingested
