"""The catalog in a PostgreSQL database (psycopg 3, extra ``postgres``).

The same table and the same answers as :mod:`emingest.catalog.sqlite`, for deployments where
several machines write at once (a Dask cluster, several runs) and one file on one disk no
longer fits. It is still only an index: ``emingest catalog sync`` rebuilds it from the
sidecars.

Concurrency, and why it holds:

- ``upsert`` is one ``INSERT … ON CONFLICT (id) DO UPDATE``: the primary key makes a
  duplicate impossible and the statement is atomic, so concurrent writers never lose a row.
- ``sync`` takes the table's ``EXCLUSIVE`` lock *before* it reads the sidecars and holds it
  until its ``DELETE`` + ``INSERT`` commit. A writer writes its sidecar first and indexes it
  second, so a sidecar written before the lock is read by the sync, and the upsert of one
  written after it waits for the lock and lands after the sync. Reads are never blocked.
- Creating the schema is guarded by a transaction-scoped advisory lock, so many processes
  opening a fresh database at once create it once. Tables are prefixed ``emingest_`` so the
  catalog can share a database with other tables (the pgvector index among them) and never
  drops a table it did not create.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emingest.catalog import (
    CatalogFilters,
    CatalogRow,
    DataRoot,
    SyncResult,
    read_sidecars,
)
from emingest.catalog.columns import INDEX_COLUMNS, row_from_columns, row_values
from emingest.errors import CatalogError, ConfigError
from emingest.records import VolumeRecord

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # in emingest_catalog_meta; a database with another version is rebuilt
_SCHEMA_LOCK = 0x656D696E  # advisory lock key ("emin"): one process creates the schema
_SCHEMA = (
    """CREATE TABLE emingest_records (
        id TEXT PRIMARY KEY NOT NULL,
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        status_group TEXT NOT NULL,
        dtype TEXT,
        shape_z BIGINT, shape_y BIGINT, shape_x BIGINT,
        voxel_z DOUBLE PRECISION, voxel_y DOUBLE PRECISION, voxel_x DOUBLE PRECISION,
        nbytes BIGINT,
        file_size_bytes BIGINT,
        sha256 TEXT,
        description TEXT NOT NULL,
        record_path TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        record_json JSONB NOT NULL
    )""",
    "CREATE INDEX emingest_records_source ON emingest_records (source)",
    "CREATE INDEX emingest_records_status ON emingest_records (status_group)",
    "CREATE INDEX emingest_records_dtype ON emingest_records (dtype)",
    "CREATE INDEX emingest_records_shape ON emingest_records (shape_z, shape_y, shape_x)",
    "CREATE INDEX emingest_records_voxel ON emingest_records (voxel_z, voxel_y, voxel_x)",
)
_UPSERT = (
    f"INSERT INTO emingest_records ({', '.join(INDEX_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(INDEX_COLUMNS))}) "
    f"ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in INDEX_COLUMNS if c != "id")
)
# Byte order, as SQLite and Python's sorted() order ids; a database's default collation
# (en_US and the like) would order "a-b" and "a/b" differently.
_ORDER = 'ORDER BY id COLLATE "C"'


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as err:
        raise ConfigError(
            "catalog.url names a PostgreSQL catalog, which needs the 'postgres' extra: "
            "pip install 'emingest[postgres]'"
        ) from err
    return psycopg


class PostgresCatalog:
    """The :class:`~emingest.catalog.Catalog` in a PostgreSQL database at ``url``.

    ``data_root``, when given, fills a database that has no catalog yet (or one of another
    schema version) from the sidecars on open, as the SQLite catalog does for a missing file.
    """

    def __init__(self, url: str, *, data_root: DataRoot | None = None) -> None:
        self._psycopg = _psycopg()
        self.url = url
        self.where = redact_url(url)
        self.data_root: DataRoot | None = data_root
        self._conn: psycopg.Connection[Any] | None = None
        try:
            self._conn = self._psycopg.connect(url, connect_timeout=30, autocommit=True)
        except self._psycopg.Error as err:
            raise CatalogError(f"{self.where}: cannot connect to the catalog: {err}") from err
        try:
            self._ensure_schema()
        except BaseException:
            self.close()
            raise

    # -- schema -------------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS emingest_catalog_meta "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            cur.execute("SELECT value FROM emingest_catalog_meta WHERE key = 'schema_version'")
            found = cur.fetchone()
            cur.execute("SELECT to_regclass('emingest_records') IS NOT NULL AS has_table")
            has_table = bool((cur.fetchone() or (False,))[0])
            if has_table and found is not None and found[0] == str(SCHEMA_VERSION):
                return
            if has_table:
                log.info("%s: catalog schema %s is outdated; rebuilding", self.where, found)
            cur.execute("DROP TABLE IF EXISTS emingest_records")
            for statement in _SCHEMA:
                cur.execute(statement)
            cur.execute(
                "INSERT INTO emingest_catalog_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(SCHEMA_VERSION),),
            )
            if self.data_root is not None:
                rows, result = read_sidecars(self.data_root)
                for path, reason in result.skipped:
                    log.warning("%s: not indexed: %s", path, reason)
                self._insert(cur, rows)

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise CatalogError(f"{self.where}: the catalog is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction; database errors become :class:`CatalogError`."""
        conn = self.conn
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except self._psycopg.Error as err:
            raise CatalogError(f"{self.where}: catalog write failed: {err}") from err

    @staticmethod
    def _insert(cur: psycopg.Cursor[Any], rows: Iterable[CatalogRow]) -> None:
        cur.executemany(_UPSERT, [row_values(r) for r in rows])

    def _select(self, clause: str, params: list[Any]) -> list[CatalogRow]:
        sql = f"SELECT {', '.join(INDEX_COLUMNS)} FROM emingest_records {clause} {_ORDER}"
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.execute(sql, params)
                return [
                    row_from_columns(dict(zip(INDEX_COLUMNS, r, strict=True)))
                    for r in cur.fetchall()
                ]
        except self._psycopg.Error as err:
            raise CatalogError(
                f"{self.where}: catalog query failed: {err}; "
                "`emingest catalog sync` rebuilds the catalog from the sidecars"
            ) from err

    # -- the Catalog protocol -----------------------------------------------------------------

    def upsert(self, record: VolumeRecord, path: Path | str) -> None:
        row = CatalogRow.from_record(record, path)
        with self._transaction() as cur:
            cur.execute(_UPSERT, row_values(row))

    def remove(self, id: str) -> bool:
        with self._transaction() as cur:
            cur.execute("DELETE FROM emingest_records WHERE id = %s", (id,))
            return cur.rowcount > 0

    def get(self, id: str) -> CatalogRow | None:
        rows = self._select("WHERE id = %s", [id])
        return rows[0] if rows else None

    def query(self, filters: CatalogFilters | None = None) -> list[CatalogRow]:
        clause, params = (filters or CatalogFilters()).sql_where(
            "%s", "strpos(lower(description), lower({p})) > 0"
        )
        return self._select(clause, params)

    def sync(self, data_root: DataRoot) -> SyncResult:
        """Lock writers out, re-read every sidecar, replace the index; one transaction."""
        self.data_root = data_root
        with self._transaction() as cur:
            # EXCLUSIVE blocks writers (upserts wait, then land after) but never readers.
            cur.execute("LOCK TABLE emingest_records IN EXCLUSIVE MODE")
            rows, result = read_sidecars(self.data_root)
            cur.execute("DELETE FROM emingest_records")
            self._insert(cur, rows)
        for path, reason in result.skipped:
            log.warning("%s: not indexed: %s", path, reason)
        for id_, path in result.duplicates:
            log.warning("%s: id %s already indexed from another sidecar; this one wins", path, id_)
        return result

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __enter__(self) -> PostgresCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresCatalog({self.where!r})"


__all__ = ["PostgresCatalog", "redact_url"]
