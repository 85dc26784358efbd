"""The embedded vector index: one faiss HNSW graph per space, patch metadata in the catalog file.

``<index_dir>/<space key>.faiss`` holds the graph and the vectors (``IndexHNSWFlat``, inner
product over unit vectors = cosine); a patch's id is its position in the graph. The tables
``vector_spaces``, ``vector_volumes`` and ``vector_patches`` in the catalog's SQLite file
(own tables: the catalog's ``records`` table is never touched) hold what each id is, so filters
are SQL. HNSW cannot delete, so re-indexing a volume rebuilds its space from the vectors the
graph stores (``reconstruct``), ids renumbered. Writers take a file lock per space; the graph is
written to a temporary name and renamed, and the database transaction is committed last, so a
crash leaves either the old state or a count mismatch that asks for ``emingest vectors sync``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from emingest.errors import CatalogError
from emingest.vectors.embedders import EmbedderId
from emingest.vectors.index import (
    Condition,
    SearchHit,
    VolumeVectors,
    filters_sql,
    unit_rows,
)

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vector_spaces (
    key TEXT PRIMARY KEY NOT NULL, embedder_json TEXT NOT NULL, dim INTEGER NOT NULL,
    ntotal INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vector_volumes (
    space TEXT NOT NULL, record_id TEXT NOT NULL, fingerprint TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (space, record_id));
CREATE TABLE IF NOT EXISTS vector_patches (
    space TEXT NOT NULL, id INTEGER NOT NULL, record_id TEXT NOT NULL, source TEXT NOT NULL,
    level INTEGER NOT NULL, z INTEGER NOT NULL, y INTEGER NOT NULL, x INTEGER NOT NULL,
    z_nm REAL, y_nm REAL, x_nm REAL, PRIMARY KEY (space, id));
CREATE INDEX IF NOT EXISTS vector_patches_volume ON vector_patches (space, record_id);
CREATE INDEX IF NOT EXISTS vector_patches_source ON vector_patches (space, source);
"""
_COLS = "id, record_id, source, level, z, y, x, z_nm, y_nm, x_nm"
_EXACT_CHUNK = 1 << 16  # vectors compared at once by an exact scan (bounded memory)


class FaissIndex:
    def __init__(
        self,
        db_path: Path | str,
        index_dir: Path | str,
        *,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        exact_below: int = 20000,
    ) -> None:
        self.db_path = Path(db_path)
        self.index_dir = Path(index_dir)
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.exact_below = exact_below
        self._cache: dict[str, tuple[int, Any]] = {}
        self._lock = threading.Lock()
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.db_path, timeout=60, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as err:
            raise CatalogError(f"{self.db_path}: cannot open the vector tables: {err}") from err

    # -- files ------------------------------------------------------------------------------

    def _file(self, key: str) -> Path:
        return self.index_dir / f"{key}.faiss"

    @contextlib.contextmanager
    def _writer(self, key: str) -> Iterator[None]:
        """One writer per space across processes (flock), and one transaction."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with open(self.index_dir / f".{key}.lock", "w") as fh, self._lock:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.commit()
                except BaseException:
                    self._db.rollback()
                    raise
            except sqlite3.Error as err:
                raise CatalogError(f"{self.db_path}: vector tables: {err}") from err
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _new(self, dim: int) -> Any:
        index = faiss.IndexHNSWFlat(dim, self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _load(self, key: str) -> Any | None:
        path = self._file(key)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        index = faiss.read_index(str(path))
        self._cache[key] = (mtime, index)
        return index

    def _save(self, key: str, index: Any) -> None:
        tmp = self._file(key).with_suffix(".faiss.tmp")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, self._file(key))
        self._cache.pop(key, None)

    # -- writing ----------------------------------------------------------------------------

    def _append(self, space: EmbedderId, index: Any, volume: VolumeVectors) -> int:
        n = 0
        for centers, vectors, nm in volume.chunks():
            if len(vectors) == 0:
                continue
            first = int(index.ntotal)
            index.add(unit_rows(vectors))
            nm_rows: Any = nm if nm is not None else [(None, None, None)] * len(centers)
            self._db.executemany(
                f"INSERT INTO vector_patches (space, {_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        space.key,
                        first + i,
                        volume.record_id,
                        volume.source,
                        volume.level,
                        int(c[0]),
                        int(c[1]),
                        int(c[2]),
                        *(None if v is None else float(v) for v in w),
                    )
                    for i, (c, w) in enumerate(zip(centers, nm_rows, strict=True))
                ],
            )
            n += len(vectors)
        self._db.execute(
            "INSERT OR REPLACE INTO vector_volumes VALUES (?,?,?,?)",
            (space.key, volume.record_id, volume.fingerprint, n),
        )
        return n

    def _set_space(self, space: EmbedderId, ntotal: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO vector_spaces VALUES (?,?,?,?)",
            (space.key, json.dumps(space.to_dict()), space.dim, ntotal),
        )

    def add_volume(self, space: EmbedderId, volume: VolumeVectors) -> int:
        with self._writer(space.key):
            index = self._load(space.key)
            if index is not None and self._ntotal(space.key) != index.ntotal:
                raise CatalogError(self._mismatch(space.key))
            if index is None:
                index = self._new(space.dim)
                self._db.execute("DELETE FROM vector_patches WHERE space=?", (space.key,))
                self._db.execute("DELETE FROM vector_volumes WHERE space=?", (space.key,))
            elif volume.record_id in self.indexed(space.key):
                index = self._without(space, index, volume.record_id)
            n = self._append(space, index, volume)
            self._set_space(space, int(index.ntotal))
            self._save(space.key, index)
        log.info("%s: %d vectors indexed in %s", volume.record_id, n, space.key)
        return n

    def _without(self, space: EmbedderId, index: Any, record_id: str) -> Any:
        """A new graph without ``record_id``'s vectors; the others renumbered in order."""
        rows = self._db.execute(
            f"SELECT {_COLS} FROM vector_patches WHERE space=? AND record_id<>? ORDER BY id",
            (space.key, record_id),
        ).fetchall()
        fresh = self._new(space.dim)
        self._db.execute("DELETE FROM vector_patches WHERE space=?", (space.key,))
        self._db.execute(
            "DELETE FROM vector_volumes WHERE space=? AND record_id=?", (space.key, record_id)
        )
        for start in range(0, len(rows), _EXACT_CHUNK):
            part = rows[start : start + _EXACT_CHUNK]
            ids = np.array([r[0] for r in part], np.int64)
            fresh.add(index.reconstruct_batch(ids))
            self._db.executemany(
                f"INSERT INTO vector_patches (space, {_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(space.key, start + i, *r[1:]) for i, r in enumerate(part)],
            )
        return fresh

    def rebuild(self, space: EmbedderId, volumes: Iterable[VolumeVectors]) -> int:
        with self._writer(space.key):
            self._db.execute("DELETE FROM vector_patches WHERE space=?", (space.key,))
            self._db.execute("DELETE FROM vector_volumes WHERE space=?", (space.key,))
            index = self._new(space.dim)
            for volume in volumes:
                self._append(space, index, volume)
            self._set_space(space, int(index.ntotal))
            self._save(space.key, index)
            return int(index.ntotal)

    # -- reading ----------------------------------------------------------------------------

    def _ntotal(self, key: str) -> int | None:
        row = self._db.execute("SELECT ntotal FROM vector_spaces WHERE key=?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _mismatch(self, key: str) -> str:
        return (
            f"the vector index {self._file(key)} does not match its tables in {self.db_path} "
            "(an interrupted update?); run `emingest vectors sync`"
        )

    def indexed(self, space_key: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT record_id, fingerprint FROM vector_volumes WHERE space=?", (space_key,)
        )
        return {r: f for r, f in rows}

    def spaces(self) -> list[EmbedderId]:
        rows = self._db.execute("SELECT embedder_json FROM vector_spaces ORDER BY key")
        return [EmbedderId.from_dict(json.loads(r[0])) for r in rows]

    def count(self, space_key: str, filters: Sequence[Condition] = ()) -> int:
        where, params = filters_sql(filters, "?")
        row = self._db.execute(
            f"SELECT count(*) FROM vector_patches WHERE space=? AND {where}", [space_key, *params]
        ).fetchone()
        return int(row[0])

    def search(
        self, space_key: str, query: np.ndarray, k: int, filters: Sequence[Condition] = ()
    ) -> list[SearchHit]:
        with self._lock:
            index = self._load(space_key)
            if index is None:
                return []
            if self._ntotal(space_key) != index.ntotal:
                raise CatalogError(self._mismatch(space_key))
            q = unit_rows(np.asarray(query, np.float32).reshape(1, -1))
            if q.shape[1] != index.d:
                raise CatalogError(f"query has {q.shape[1]} dimensions, {space_key} has {index.d}")
            matching = index.ntotal if not filters else self.count(space_key, filters)
            want = min(k, matching)
            if want == 0:
                return []
            ids: list[int] = []
            sims: list[float] = []
            candidates: np.ndarray | None = None
            if filters:
                where, params = filters_sql(filters, "?")
                candidates = np.fromiter(
                    (
                        r[0]
                        for r in self._db.execute(
                            f"SELECT id FROM vector_patches WHERE space=? AND {where}",
                            [space_key, *params],
                        )
                    ),
                    np.int64,
                )
            if candidates is None or len(candidates) > self.exact_below:
                ids, sims = self._hnsw(index, q, k, candidates)
            if len(ids) < want:  # few candidates, or the graph walk came back short: exact
                ids, sims = self._exact(index, q, k, candidates)
            return self._hits(space_key, ids, sims)

    def _hnsw(
        self, index: Any, q: np.ndarray, k: int, candidates: np.ndarray | None
    ) -> tuple[list[int], list[float]]:
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = max(self.ef_search, k)
        if candidates is not None:
            selector = faiss.IDSelectorBatch(candidates)
            params.sel = selector
        sims, ids = index.search(q, k, params=params)
        keep = ids[0] >= 0
        return [int(i) for i in ids[0][keep]], [float(s) for s in sims[0][keep]]

    def _exact(
        self, index: Any, q: np.ndarray, k: int, candidates: np.ndarray | None
    ) -> tuple[list[int], list[float]]:
        best_ids = np.zeros(0, np.int64)
        best_sims = np.zeros(0, np.float32)
        total = index.ntotal if candidates is None else len(candidates)
        for start in range(0, total, _EXACT_CHUNK):
            stop = min(total, start + _EXACT_CHUNK)
            if candidates is None:
                chunk_ids = np.arange(start, stop, dtype=np.int64)
                vectors = index.reconstruct_n(start, stop - start)
            else:
                chunk_ids = candidates[start:stop]
                vectors = index.reconstruct_batch(chunk_ids)
            sims = vectors @ q[0]
            best_ids = np.concatenate([best_ids, chunk_ids])
            best_sims = np.concatenate([best_sims, sims])
            if len(best_ids) > k:
                top = np.argpartition(-best_sims, k - 1)[:k]
                best_ids, best_sims = best_ids[top], best_sims[top]
        order = np.lexsort((best_ids, -best_sims))
        return [int(i) for i in best_ids[order]], [float(s) for s in best_sims[order]]

    def _hits(self, key: str, ids: list[int], sims: list[float]) -> list[SearchHit]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = {
            r[0]: r
            for r in self._db.execute(
                f"SELECT {_COLS} FROM vector_patches WHERE space=? AND id IN ({marks})", [key, *ids]
            )
        }
        hits = []
        for i, s in zip(ids, sims, strict=True):
            r = rows[i]
            nm = None if r[7] is None else (float(r[7]), float(r[8]), float(r[9]))
            hits.append(SearchHit(r[1], r[2], (r[4], r[5], r[6]), nm, r[3], 1.0 - s, key, i))
        return hits

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FaissIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
