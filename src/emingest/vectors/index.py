"""The vector index interface, shared by the embedded (faiss) and server (pgvector) backends.

An index holds, per space (embedder key), one vector per patch and its metadata: the volume
(catalog id and source), the level, the level-0 centre in voxels and nm. Vectors are compared by
cosine distance (1 - cosine similarity). A filtered search returns ``k`` hits whenever ``k``
patches match: the backends search exactly when a filter leaves few candidates, and fall back
to an exact search when the approximate one comes back short.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from emingest.errors import ConfigError
from emingest.vectors.embedders import EmbedderId

FILTER_FIELDS = {
    "record_id": str,
    "source": str,
    "level": int,
    "z": int,
    "y": int,
    "x": int,
    "z_nm": float,
    "y_nm": float,
    "x_nm": float,
}
"""Columns a ``--where`` condition can name (z, y, x: level-0 voxel of the patch centre)."""
_OPS = ("<=", ">=", "!=", "=", "<", ">")
_CONDITION = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|!=|=|<|>)\s*(.+?)\s*$")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        """``"source=idr"``, ``"z < 100"``, ``"record_id != epfl/x/y"``."""
        m = _CONDITION.match(text)
        if not m:
            raise ConfigError(
                f"cannot read the filter {text!r}: write FIELD OP VALUE, OP one of "
                f"{' '.join(_OPS)}, FIELD one of {', '.join(FILTER_FIELDS)}"
            )
        name, op, raw = m.groups()
        kind = FILTER_FIELDS.get(name)
        if kind is None:
            raise ConfigError(
                f"unknown filter field {name!r}; use one of {', '.join(FILTER_FIELDS)}"
            )
        try:
            value = kind(raw.strip("'\""))
        except ValueError as err:
            raise ConfigError(f"filter {text!r}: {raw!r} is not a {kind.__name__}") from err
        return cls(name, op, value)


def make_filters(
    *, source: str | None = None, where: str | Sequence[str] | None = None
) -> list[Condition]:
    conds = [Condition("source", "=", source)] if source else []
    if isinstance(where, str):
        where = [where]
    conds += [Condition.parse(w) for w in where or ()]
    return conds


def filters_sql(conds: Sequence[Condition], placeholder: str) -> tuple[str, list[Any]]:
    """``AND``-joined SQL of ``conds`` (columns are whitelisted, values are parameters)."""
    if not conds:
        return "TRUE", []
    parts = [f"{c.field} {'<>' if c.op == '!=' else c.op} {placeholder}" for c in conds]
    return " AND ".join(parts), [c.value for c in conds]


@dataclass(frozen=True)
class SearchHit:
    """One patch found by a search: plain data, JSON through :meth:`to_dict`."""

    record_id: str
    source: str
    center_zyx: tuple[int, int, int]
    """Level-0 voxel of the patch centre."""
    center_nm: tuple[float, float, float] | None
    level: int
    distance: float
    """Cosine distance to the query, 0 (same direction) .. 2."""
    model: str
    """The space (embedder key) the vectors are in."""
    patch_id: int = field(default=-1, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "source": self.source,
            "center_zyx": list(self.center_zyx),
            "center_nm": list(self.center_nm) if self.center_nm is not None else None,
            "level": self.level,
            "distance": round(float(self.distance), 6),
            "model": self.model,
        }


@dataclass
class VolumeVectors:
    """The vectors of one volume in one space, read chunk by chunk from its store."""

    record_id: str
    source: str
    level: int
    fingerprint: str
    chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]]
    """Yields (centres int64 [n, 3], vectors float32 [n, d], centres nm [n, 3] or None)."""


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (cosine distance becomes 1 - dot product); zero rows stay 0."""
    v = np.ascontiguousarray(vectors, np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


class VectorIndex(Protocol):
    """What both backends do. Implementations raise :class:`~emingest.errors.CatalogError`."""

    def add_volume(self, space: EmbedderId, volume: VolumeVectors) -> int:
        """Index (or re-index) one volume's vectors; returns how many."""
        ...

    def indexed(self, space_key: str) -> dict[str, str]:
        """record_id -> fingerprint of the volumes indexed in a space."""
        ...

    def rebuild(self, space: EmbedderId, volumes: Iterable[VolumeVectors]) -> int:
        """Replace the whole space with these volumes (``vectors sync``)."""
        ...

    def spaces(self) -> list[EmbedderId]: ...

    def search(
        self, space_key: str, query: np.ndarray, k: int, filters: Sequence[Condition] = ()
    ) -> list[SearchHit]:
        """The ``k`` nearest patches (fewer only when fewer match ``filters``)."""
        ...

    def close(self) -> None: ...
