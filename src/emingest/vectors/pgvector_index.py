"""The server vector index: PostgreSQL with pgvector (needs the ``postgres`` extra).

One table per space (``emingest_vec_<digest of the key>``: patch metadata and a
``vector(dim)`` column with an HNSW index over cosine distance), plus ``emingest_vector_spaces``
and ``emingest_vector_volumes``. pgvector (0.6) applies a ``WHERE`` clause *after* its HNSW
scan, so a selective filter can return fewer rows than asked; here a filter that leaves at most
``exact_below`` rows is searched exactly (sequential scan), and an approximate search that
comes back short is redone exactly. Writers of a space serialise on an advisory lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from emingest.errors import CatalogError, ConfigError
from emingest.vectors.embedders import EmbedderId
from emingest.vectors.index import Condition, SearchHit, VolumeVectors, filters_sql, unit_rows

_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS emingest_vector_spaces (
    key text PRIMARY KEY, table_name text NOT NULL, embedder_json text NOT NULL,
    dim integer NOT NULL);
CREATE TABLE IF NOT EXISTS emingest_vector_volumes (
    space text NOT NULL, record_id text NOT NULL, fingerprint text NOT NULL, n integer NOT NULL,
    PRIMARY KEY (space, record_id));
"""
_COLS = "id, record_id, source, level, z, y, x, z_nm, y_nm, x_nm"
_MAX_EF = 1000  # pgvector's limit of hnsw.ef_search


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as err:
        raise ConfigError(
            "the pgvector backend needs the postgres extra: pip install 'emingest[postgres]'"
        ) from err
    return psycopg


def _table(key: str) -> str:
    return "emingest_vec_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(v)) for v in vector) + "]"


class PgVectorIndex:
    def __init__(
        self,
        dsn: str,
        *,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        exact_below: int = 20000,
    ) -> None:
        psycopg = _psycopg()
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.exact_below = exact_below
        self._errors = psycopg.Error
        try:
            self._conn = psycopg.connect(dsn, autocommit=False)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(7130013)")  # one schema creator
                self._conn.execute(_SCHEMA)
        except psycopg.Error as err:
            raise CatalogError(f"pgvector index: cannot connect or set up: {err}") from err

    def _run(self, fn: Any, *args: Any) -> Any:
        try:
            with self._conn.transaction():
                return fn(*args)
        except self._errors as err:
            raise CatalogError(f"pgvector index: {err}") from err

    # -- writing ----------------------------------------------------------------------------

    def _ensure_space(self, space: EmbedderId, *, empty: bool) -> str:
        table = _table(space.key)
        c = self._conn
        c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (space.key,))
        if empty:
            c.execute(f"DROP TABLE IF EXISTS {table}")
            c.execute("DELETE FROM emingest_vector_volumes WHERE space=%s", (space.key,))
        c.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, record_id text NOT NULL,"
            " source text NOT NULL, level integer NOT NULL, z integer NOT NULL,"
            " y integer NOT NULL, x integer NOT NULL, z_nm double precision,"
            " y_nm double precision, x_nm double precision,"
            f" embedding vector({space.dim}) NOT NULL)"
        )
        c.execute(f"CREATE INDEX IF NOT EXISTS {table}_volume ON {table} (record_id)")
        c.execute(f"CREATE INDEX IF NOT EXISTS {table}_source ON {table} (source)")
        if not empty:  # a rebuild loads first and builds the graph once, at the end
            self._graph(table)
        c.execute(
            "INSERT INTO emingest_vector_spaces VALUES (%s,%s,%s,%s) ON CONFLICT (key) DO UPDATE "
            "SET embedder_json = EXCLUDED.embedder_json",
            (space.key, table, json.dumps(space.to_dict()), space.dim),
        )
        return table

    def _graph(self, table: str) -> None:
        self._conn.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw "
            f"(embedding vector_cosine_ops) WITH (m = {int(self.m)}, "
            f"ef_construction = {int(self.ef_construction)})"
        )

    def _insert(self, table: str, space: EmbedderId, volume: VolumeVectors) -> int:
        c = self._conn
        c.execute(f"DELETE FROM {table} WHERE record_id=%s", (volume.record_id,))
        (next_id,) = c.execute(f"SELECT coalesce(max(id) + 1, 0) FROM {table}").fetchone()
        n = 0
        with c.cursor().copy(f"COPY {table} ({_COLS}, embedding) FROM STDIN") as copy:
            for centers, vectors, nm in volume.chunks():
                units = unit_rows(vectors)
                for i in range(len(units)):
                    w = nm[i] if nm is not None else (None, None, None)
                    copy.write_row(
                        (
                            next_id + n,
                            volume.record_id,
                            volume.source,
                            volume.level,
                            int(centers[i][0]),
                            int(centers[i][1]),
                            int(centers[i][2]),
                            *(None if v is None else float(v) for v in w),
                            _literal(units[i]),
                        )
                    )
                    n += 1
        c.execute(
            "INSERT INTO emingest_vector_volumes VALUES (%s,%s,%s,%s) ON CONFLICT (space, "
            "record_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, n = EXCLUDED.n",
            (space.key, volume.record_id, volume.fingerprint, n),
        )
        return n

    def add_volume(self, space: EmbedderId, volume: VolumeVectors) -> int:
        def do() -> int:
            return self._insert(self._ensure_space(space, empty=False), space, volume)

        return int(self._run(do))

    def rebuild(self, space: EmbedderId, volumes: Iterable[VolumeVectors]) -> int:
        def do() -> int:
            table = self._ensure_space(space, empty=True)
            n = sum(self._insert(table, space, v) for v in volumes)
            self._graph(table)
            return n

        return int(self._run(do))

    # -- reading ----------------------------------------------------------------------------

    def indexed(self, space_key: str) -> dict[str, str]:
        rows = self._run(
            lambda: self._conn.execute(
                "SELECT record_id, fingerprint FROM emingest_vector_volumes WHERE space=%s",
                (space_key,),
            ).fetchall()
        )
        return {r: f for r, f in rows}

    def spaces(self) -> list[EmbedderId]:
        rows = self._run(
            lambda: self._conn.execute(
                "SELECT embedder_json FROM emingest_vector_spaces ORDER BY key"
            ).fetchall()
        )
        return [EmbedderId.from_dict(json.loads(r[0])) for r in rows]

    def search(
        self, space_key: str, query: np.ndarray, k: int, filters: Sequence[Condition] = ()
    ) -> list[SearchHit]:
        return list(self._run(self._search, space_key, query, k, filters))

    def _search(
        self, space_key: str, query: np.ndarray, k: int, filters: Sequence[Condition]
    ) -> list[SearchHit]:
        c = self._conn
        row = c.execute(
            "SELECT table_name, dim FROM emingest_vector_spaces WHERE key=%s", (space_key,)
        ).fetchone()
        if row is None:
            return []
        table, dim = row
        q = unit_rows(np.asarray(query, np.float32).reshape(1, -1))
        if q.shape[1] != dim:
            raise CatalogError(f"query has {q.shape[1]} dimensions, {space_key} has {dim}")
        where, params = filters_sql(filters, "%s")
        want, matching = k, 0
        if filters:
            (matching,) = c.execute(
                f"SELECT count(*) FROM {table} WHERE {where}", params
            ).fetchone()
            want = min(k, int(matching))
            if want == 0:
                return []
        # ORDER BY the distance alone: a second sort key would keep the HNSW index out
        sql = (
            f"SELECT {_COLS}, embedding <=> %s::vector AS d FROM {table} WHERE {where} "
            "ORDER BY embedding <=> %s::vector LIMIT %s"
        )
        args = [_literal(q[0]), *params, _literal(q[0]), k]
        rows: list[Any] = []
        if not (filters and matching <= self.exact_below):
            c.execute(f"SET LOCAL hnsw.ef_search = {min(_MAX_EF, max(self.ef_search, k))}")
            rows = c.execute(sql, args).fetchall()
        if len(rows) < want:  # a selective filter after the graph scan: exact, sequential
            c.execute("SET LOCAL enable_indexscan = off")
            rows = c.execute(sql.replace("LIMIT", ", id LIMIT"), args).fetchall()
        return [
            SearchHit(
                r[1],
                r[2],
                (r[4], r[5], r[6]),
                None if r[7] is None else (float(r[7]), float(r[8]), float(r[9])),
                r[3],
                float(r[10]),
                space_key,
                int(r[0]),
            )
            for r in rows
        ]

    def close(self) -> None:
        self._conn.close()
