"""Patch embeddings of every volume, stored beside the image, indexed, searchable by example.

>>> from emingest.vectors import embed_records, search_like
>>> embed_records(settings)                                     # doctest: +SKIP
>>> for hit in search_like(settings, "epfl/ca1/training", (80, 512, 512), k=5):  # doctest: +SKIP
...     print(hit.record_id, hit.center_zyx, hit.distance)

docs/vectors.md describes patches, coordinates, embedders and backends.
"""

from __future__ import annotations

from emingest.vectors.backends import open_vector_index
from emingest.vectors.embed import (
    EmbedResult,
    embed_after_ingest,
    embed_records,
    embed_volume,
    make_encoder,
)
from emingest.vectors.embedders import (
    Embedder,
    EmbedderId,
    available_embedders,
    create_embedder,
    embedder_key,
)
from emingest.vectors.index import Condition, SearchHit, VectorIndex, make_filters
from emingest.vectors.search import (
    patch_vector,
    read_image,
    search_array,
    search_like,
    search_vector,
    sync_index,
)

__all__ = [
    "Condition",
    "EmbedResult",
    "Embedder",
    "EmbedderId",
    "SearchHit",
    "VectorIndex",
    "available_embedders",
    "create_embedder",
    "embed_after_ingest",
    "embed_records",
    "embed_volume",
    "embedder_key",
    "make_encoder",
    "make_filters",
    "open_vector_index",
    "patch_vector",
    "read_image",
    "search_array",
    "search_like",
    "search_vector",
    "sync_index",
]
