"""A throwaway PostgreSQL 16 server with pgvector, for tests (the ``pgserver`` wheel).

``pgserver`` ships PostgreSQL's binaries and the pgvector extension inside a wheel, so tests
need no system package and no container. It runs ``initdb`` in a folder of ours and listens on
a Unix socket in it only (no TCP port, nothing reachable from outside). As root it runs the
server as a ``pgserver`` system user, which it creates.

One server serves a whole test session; each test gets a fresh database of its own from
:meth:`PostgresServer.create_database` with the ``vector`` extension already created, so the
catalog and the vector index can share the fixture.

>>> with postgres_server() as server:                      # doctest: +SKIP
...     url = server.create_database()
...     PostgresCatalog(url)
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class PostgresServer:
    """A running throwaway server; :meth:`create_database` hands out fresh databases."""

    def __init__(self, handle: Any, pgdata: Path) -> None:
        self._handle = handle
        self.pgdata = pgdata
        self._counter = itertools.count(1)
        self.url: str = handle.get_uri("postgres")
        """Superuser URL of the ``postgres`` maintenance database (Unix socket)."""

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def create_database(self, name: str | None = None, *, vector: bool = True) -> str:
        """Create an empty database (with the pgvector extension unless ``vector=False``) and
        return its URL. Without a name, a new one is made up."""
        import psycopg

        name = _identifier(name or f"test_{next(self._counter)}")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.url_for(name)
        if vector:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return url

    def drop_database(self, name_or_url: str) -> None:
        """Drop a database (closing its connections first)."""
        import psycopg

        name = urlsplit(name_or_url).path.lstrip("/") if "://" in name_or_url else name_or_url
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_identifier(name)}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server and delete its data folder."""
        self._handle.cleanup()
        shutil.rmtree(self.pgdata, ignore_errors=True)


def _identifier(name: str) -> str:
    """A database name made safe to quote: letters, digits and underscores, at most 63 bytes."""
    return re.sub(r"\W", "_", name)[:63]


@contextmanager
def postgres_server(parent: Path | str | None = None) -> Iterator[PostgresServer]:
    """Start a throwaway server in a new folder under ``parent`` (default: the temp folder);
    stop it and delete its data on exit."""
    try:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime folder at import; without XDG_RUNTIME_DIR
            # (root, CI) platformdirs warns and falls back to /tmp/runtime-<uid>, which is fine.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import pgserver
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise RuntimeError(
            "a throwaway PostgreSQL needs the pgserver wheel: pip install 'emingest[test]'"
        ) from err
    base = Path(tempfile.mkdtemp(prefix="emingest-pg-", dir=parent))
    pgdata = base / "pgdata"
    server: PostgresServer | None = None
    try:
        server = PostgresServer(pgserver.get_server(pgdata, cleanup_mode="delete"), pgdata)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


__all__ = ["PostgresServer", "postgres_server"]
