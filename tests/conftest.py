"""Shared test hygiene. Loopback servers live in each test module's own fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from emingest.testing.postgres import PostgresServer, postgres_server


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
