"""The catalog in an embedded SQLite file (stdlib ``sqlite3``, WAL mode).

One table, one row per record: the columns ``catalog list`` filters on, indexed, plus the full
record JSON. The file is only an index: a missing, corrupt or outdated one is rebuilt from the
sidecars. Every change is one SQLite transaction, so a crash mid-sync leaves the previous index
whole; a corrupt file is replaced by a new one built beside it under a temporary name and
renamed over it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from emingest.atomic import current_umask
from emingest.catalog import (
    CatalogFilters,
    CatalogRow,
    DataRoot,
    SyncResult,
    read_sidecars,
)
from emingest.catalog.columns import INDEX_COLUMNS, row_from_columns, row_values
from emingest.diskspace import free_bytes, storage_cause
from emingest.errors import CatalogError
from emingest.records import VolumeRecord

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # PRAGMA user_version; a file with another version is rebuilt
_SCHEMA = """
CREATE TABLE records (
    id TEXT PRIMARY KEY NOT NULL,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_group TEXT NOT NULL,
    dtype TEXT,
    shape_z INTEGER, shape_y INTEGER, shape_x INTEGER,
    voxel_z REAL, voxel_y REAL, voxel_x REAL,
    nbytes INTEGER,
    file_size_bytes INTEGER,
    sha256 TEXT,
    description TEXT NOT NULL,
    record_path TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    record_json TEXT NOT NULL
);
CREATE INDEX records_source ON records (source);
CREATE INDEX records_status ON records (status_group);
CREATE INDEX records_dtype ON records (dtype);
CREATE INDEX records_shape ON records (shape_z, shape_y, shape_x);
CREATE INDEX records_voxel ON records (voxel_z, voxel_y, voxel_x);
"""
_INSERT = (
    f"INSERT OR REPLACE INTO records ({', '.join(INDEX_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(INDEX_COLUMNS))})"
)


def _is_corruption(err: sqlite3.DatabaseError) -> bool:
    name = getattr(err, "sqlite_errorname", "")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    text = str(err).lower()
    return "not a database" in text or "malformed" in text


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open. SQLite rolls back by itself on some errors
    (SQLITE_FULL: the disk is full); a second ROLLBACK would then raise "cannot rollback - no
    transaction is active" and hide the real cause."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _failure(db_path: Path, doing: str, err: BaseException) -> CatalogError:
    """A CatalogError that names the real cause; a full disk says so, and what to do. SQLite
    says "disk I/O error" when it cannot even create its -shm file: a nearly full disk is then
    taken to be the cause."""
    free = free_bytes(db_path)
    nearly_full = free is not None and free < 1 << 20 and isinstance(err, sqlite3.OperationalError)
    full = storage_cause(err) is not None or getattr(err, "sqlite_errorname", "") == "SQLITE_FULL"
    if full or nearly_full:
        room = f", {free} bytes free there" if free is not None else ""
        return CatalogError(
            f"{db_path}: {doing} failed: no space left on the disk holding the catalog "
            f"({err}{room}). Free space, then `emingest catalog sync` catches the index up "
            "from the record files"
        )
    return CatalogError(f"{db_path}: {doing} failed: {err}")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _fill(conn: sqlite3.Connection, rows: Iterable[CatalogRow], *, clear: bool) -> None:
    if clear:
        conn.execute("DELETE FROM records")
    conn.executemany(_INSERT, (row_values(r) for r in rows))


class SQLiteCatalog:
    """The :class:`~emingest.catalog.Catalog` in one SQLite file.

    ``data_root``, when given, lets the catalog heal itself on open: a missing, corrupt or
    outdated file is rebuilt from the sidecars under it.
    """

    def __init__(self, db_path: Path | str, *, data_root: DataRoot | None = None) -> None:
        self.db_path = Path(db_path)
        self.data_root: DataRoot | None = data_root
        self._conn: sqlite3.Connection | None = None
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CatalogError(f"{self.db_path}: cannot create its folder: {err}") from err
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as err:
            if not _is_corruption(err):
                raise _failure(self.db_path, "opening the catalog", err) from err
            log.warning(
                "%s: catalog database is corrupt (%s); rebuilding it from the sidecars",
                self.db_path,
                err,
            )
            self._conn = self._replace_file(self._sidecar_rows())

    # -- opening and rebuilding ---------------------------------------------------------------

    def _sidecar_rows(self) -> list[CatalogRow]:
        if self.data_root is None:
            return []
        rows, result = read_sidecars(self.data_root)
        for path, reason in result.skipped:
            log.warning("%s: not indexed: %s", path, reason)
        return rows

    def _open(self) -> sqlite3.Connection:
        conn = _connect(self.db_path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                has_table = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='records'"
                ).fetchone()
                if version != SCHEMA_VERSION or not has_table:
                    if has_table:
                        log.info(
                            "%s: catalog schema %s is outdated; rebuilding", self.db_path, version
                        )
                    self._create_schema(conn)
                    _fill(conn, self._sidecar_rows(), clear=False)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("DROP TABLE IF EXISTS records")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _replace_file(self, rows: list[CatalogRow]) -> sqlite3.Connection:
        """Build a new database beside the old file, then rename it over the old one."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{self.db_path.name}.", suffix=".tmp", dir=self.db_path.parent
        )
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0o600 would hide it from others
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            conn = _connect(tmp)
            try:
                conn.execute("BEGIN")
                self._create_schema(conn)
                _fill(conn, rows, clear=False)
                conn.execute("COMMIT")
            finally:
                conn.close()
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, self.db_path)
        except (OSError, sqlite3.Error) as err:
            tmp.unlink(missing_ok=True)
            raise CatalogError(f"{self.db_path}: cannot rebuild the catalog: {err}") from err
        try:
            return self._open()
        except sqlite3.Error as err:
            raise CatalogError(f"{self.db_path}: cannot open the rebuilt catalog: {err}") from err

    # -- the Catalog protocol -----------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise CatalogError(f"{self.db_path}: the catalog is closed")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as err:
            raise _failure(self.db_path, "catalog write", err) from err

    def upsert(self, record: VolumeRecord, path: Path | str) -> None:
        row = CatalogRow.from_record(record, path)
        with self._transaction() as conn:
            conn.execute(_INSERT, row_values(row))

    def remove(self, id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM records WHERE id = ?", (id,)).rowcount > 0

    def get(self, id: str) -> CatalogRow | None:
        rows = self._select("WHERE id = ?", [id])
        return rows[0] if rows else None

    def query(self, filters: CatalogFilters | None = None) -> list[CatalogRow]:
        clause, params = (filters or CatalogFilters()).sql_where(
            "?", "instr(lower(description), lower({p})) > 0"
        )
        return self._select(clause, params)

    def _select(self, clause: str, params: list[Any]) -> list[CatalogRow]:
        sql = f"SELECT {', '.join(INDEX_COLUMNS)} FROM records {clause} ORDER BY id"
        try:
            return [row_from_columns(r) for r in self.conn.execute(sql, params)]
        except sqlite3.Error as err:
            if storage_cause(err) is not None or "I/O" in str(err):
                raise _failure(self.db_path, "catalog query", err) from err
            raise CatalogError(
                f"{self.db_path}: catalog query failed: {err}; "
                "`emingest catalog sync` rebuilds the catalog from the sidecars"
            ) from err

    def sync(self, data_root: DataRoot) -> SyncResult:
        """Re-read every sidecar and replace the index with them in one transaction."""
        self.data_root = data_root
        rows: list[CatalogRow] | None = None
        try:
            with self._transaction() as conn:
                # Read under the write lock: a writer indexing a sidecar we already read waits
                # for us, so an older copy of a record never overwrites its newer update.
                rows, result = read_sidecars(self.data_root)
                _fill(conn, rows, clear=True)
        except CatalogError as err:
            cause = err.__cause__
            if not (isinstance(cause, sqlite3.DatabaseError) and _is_corruption(cause)):
                raise
            log.warning("%s: catalog database is corrupt (%s); replacing it", self.db_path, cause)
            if rows is None:
                rows, result = read_sidecars(self.data_root)
            self._conn = self._replace_file(rows)
        for path, reason in result.skipped:
            log.warning("%s: not indexed: %s", path, reason)
        for id_, path in result.duplicates:
            log.warning("%s: id %s already indexed from another sidecar; this one wins", path, id_)
        return result

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteCatalog({str(self.db_path)!r})"
