"""Embedders: a plug-in kind that turns patches into vectors.

An embedder has a name, a version, a vector dimension and a patch shape (z, y, x in pixels;
z = 1 for a 2-D embedder), and ``embed(batch) -> float32 [n, dim]`` over a batch of patches
already normalised (zero mean, unit variance over their volume). Its :func:`embedder_key`
(name, version and a digest of its parameters) names the space its vectors live in: the store
group, the index and every search; vectors of two keys are never compared.

Built-ins are listed in one map; third parties plug in through the entry-point group
``emingest.embedders`` (``name = "package.module:Class"``), as sources do. A class is built
with ``Class(options: dict)``, the options coming from ``[embed]`` (e.g. ``weights``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emingest.errors import ConfigError

BUILTIN_EMBEDDERS: dict[str, str] = {
    "scattering": "emingest.vectors.scattering:ScatteringEmbedder",
    "torch": "emingest.vectors.torch_model:TorchEmbedder",
}
ENTRY_POINT_GROUP = "emingest.embedders"
DEFAULT_EMBEDDER = "scattering"


@runtime_checkable
class Embedder(Protocol):
    name: str
    version: str
    dim: int
    patch_shape: tuple[int, int, int]
    """Pixels z, y, x of one input patch; z = 1 for 2-D embedders."""

    def params(self) -> dict[str, Any]:
        """Everything besides name and version that changes the vectors (JSON-able)."""
        ...

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """``batch``: float32 [n, z, y, x] in ``patch_shape``; returns float32 [n, dim]."""
        ...


@dataclass(frozen=True)
class EmbedderId:
    """Which embedder made a vector: stored beside every set of vectors."""

    name: str
    version: str
    params: dict[str, Any]
    dim: int

    @property
    def key(self) -> str:
        """``<name>-<version>-<8 hex of params>``: a file- and table-safe name of the space."""
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        safe = "".join(c if c.isalnum() else "_" for c in f"{self.name}-{self.version}")
        return f"{safe}-{digest[:8]}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "params": self.params, "dim": self.dim}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedderId:
        return cls(str(data["name"]), str(data["version"]), dict(data["params"]), int(data["dim"]))


def embedder_id(embedder: Embedder) -> EmbedderId:
    return EmbedderId(embedder.name, embedder.version, embedder.params(), int(embedder.dim))


def embedder_key(embedder: Embedder) -> str:
    return embedder_id(embedder).key


def available_embedders() -> dict[str, str]:
    """Name -> "module:Class": built-ins, then plug-ins (which cannot shadow a built-in)."""
    found = dict(BUILTIN_EMBEDDERS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def create_embedder(name: str, options: dict[str, Any] | None = None) -> Embedder:
    """Build the embedder registered as ``name``; an unknown name lists the known ones."""
    known = available_embedders()
    if name not in known:
        raise ConfigError(f"unknown embedder {name!r}; known embedders: {', '.join(sorted(known))}")
    module_name, _, class_name = known[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    embedder = cls(dict(options or {}))
    if not isinstance(embedder, Embedder):
        raise ConfigError(
            f"embedder {name!r} ({known[name]}) does not follow the Embedder protocol"
        )
    return embedder


__all__ = [
    "BUILTIN_EMBEDDERS",
    "DEFAULT_EMBEDDER",
    "ENTRY_POINT_GROUP",
    "Embedder",
    "EmbedderId",
    "available_embedders",
    "create_embedder",
    "embedder_id",
    "embedder_key",
]
