"""Which vector index the settings name: faiss (embedded, default) or pgvector (server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from emingest.errors import ConfigError
from emingest.vectors.index import VectorIndex

if TYPE_CHECKING:
    from emingest.config import Settings


def index_dir(settings: Settings) -> Path:
    """The faiss files' folder: ``embed.index_dir``, else ``vectors/`` in the local root (the
    data root, or ``storage.work_dir`` when the data root is on S3)."""
    cfg = settings.embed
    return Path(cfg.index_dir) if cfg.index_dir else settings.storage.local_root / "vectors"


def open_vector_index(settings: Settings) -> VectorIndex:
    cfg = settings.embed
    if cfg.backend == "pgvector":
        if not cfg.postgres_dsn:
            raise ConfigError("embed.backend = 'pgvector' needs embed.postgres_dsn")
        from emingest.vectors.pgvector_index import PgVectorIndex

        return PgVectorIndex(
            cfg.postgres_dsn,
            m=cfg.hnsw_m,
            ef_construction=cfg.hnsw_ef_construction,
            ef_search=cfg.hnsw_ef_search,
            exact_below=cfg.exact_below,
        )
    from emingest.catalog import catalog_db_path
    from emingest.vectors.faiss_index import FaissIndex

    return FaissIndex(
        catalog_db_path(settings),
        index_dir(settings),
        m=cfg.hnsw_m,
        ef_construction=cfg.hnsw_ef_construction,
        ef_search=cfg.hnsw_ef_search,
        exact_below=cfg.exact_below,
    )
