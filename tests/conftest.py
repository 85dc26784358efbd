"""Shared test hygiene. Loopback servers live in each test module's own fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from emingest.testing.openorganelle import S3Replica
from emingest.testing.postgres import PostgresServer, postgres_server
from emingest.testing.s3_root import CREDENTIALS, S3DataRoot


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
