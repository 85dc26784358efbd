"""Vectors beside the image: ``<volume>.ome.zarr/embeddings/<space key>/`` (Zarr v3).

The source of truth of every index, as sidecars are of the catalog. Per volume and space:

- ``vectors``: float32 [gz, gy, gx, dim], one vector per patch of the grid;
- ``centers``: int64 [gz, gy, gx, 3], the level-0 voxel (z, y, x) of each patch centre;
- attributes ``emingest_embeddings``: the embedder (name, version, params, dim), the grid,
  the normalisation, the volume's sha256 and ``complete``.

Arrays are chunked one block per chunk (one z position x one band of patch rows), so every
block writes whole chunks of its own; a journal of done blocks beside the group
(``embeddings/.<key>.journal``) lets a killed run resume. An index is rebuilt from these groups
(``emingest vectors sync``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from emingest.errors import ConversionError
from emingest.storage import Location, as_location
from emingest.vectors.grid import PatchGrid
from emingest.vectors.zarr_io import zarr_store

GROUP = "embeddings"
ATTR = "emingest_embeddings"


def _volume(volume_store: Location | Path | str) -> Location:
    return volume_store if isinstance(volume_store, Location) else as_location(volume_store)


class EmbeddingStore:
    """One space's group in a volume's store, below any data root (a folder or S3: give a
    :class:`Location` from the settings' root, e.g. :func:`emingest.records.locate_in_root`)."""

    def __init__(self, volume_store: Location | Path | str, key: str) -> None:
        self.volume = _volume(volume_store)
        self.key = key
        self.location = self.volume / GROUP / key
        self.journal_location = self.volume / GROUP / f".{key}.journal"
        local = self.volume.is_local
        self.path: Path | Location = self.location.path if local else self.location
        """The group: a folder (local root) or its :class:`Location` (S3)."""
        self.journal_path: Path | Location = (
            self.journal_location.path if local else self.journal_location
        )

    def _zarr(self) -> Any:
        return zarr_store(self.location)

    def exists(self) -> bool:
        return (self.location / "zarr.json").exists()

    def attrs(self) -> dict[str, Any] | None:
        """The group's description, or None when there is no (readable) group."""
        if not self.exists():
            return None
        try:
            group = zarr.open_group(self._zarr(), mode="r")
            found: Any = group.attrs.get(ATTR)
            return dict(found) if found else None
        except (OSError, ValueError, KeyError) as err:
            raise ConversionError(f"{self.path}: unreadable embeddings group: {err}") from err

    def is_complete(self) -> bool:
        a = self.attrs()
        return bool(a and a.get("complete"))

    def grid(self) -> PatchGrid:
        a = self.attrs()
        if not a:
            raise ConversionError(f"{self.path}: no embeddings here")
        return PatchGrid.from_attrs(a["grid"])

    def create(self, grid: PatchGrid, dim: int, attrs: dict[str, Any]) -> None:
        """Start afresh: an empty group with the arrays sized for ``grid``."""
        self.remove()
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        parent = self.volume / GROUP
        if not (parent / "zarr.json").exists():
            zarr.open_group(zarr_store(parent), mode="a")
        group = zarr.open_group(self._zarr(), mode="w")
        gz, gy, gx = grid.counts
        rows = grid.band_rows
        group.create_array(
            "vectors",
            shape=(gz, gy, gx, dim),
            chunks=(1, rows, max(gx, 1), dim),
            dtype="float32",
            fill_value=np.nan,
        )
        group.create_array(
            "centers",
            shape=(gz, gy, gx, 3),
            chunks=(1, rows, max(gx, 1), 3),
            dtype="int64",
            fill_value=-1,
        )
        group.attrs[ATTR] = {**attrs, "grid": grid.to_attrs(), "dim": dim, "complete": False}

    def write_block(self, iz: int, rows: range, vectors: np.ndarray, centers: np.ndarray) -> None:
        group = zarr.open_group(self._zarr(), mode="r+")
        group["vectors"][iz, rows.start : rows.stop] = vectors  # type: ignore[index]
        group["centers"][iz, rows.start : rows.stop] = centers  # type: ignore[index]

    def mark_complete(self) -> None:
        group = zarr.open_group(self._zarr(), mode="r+")
        current: Any = group.attrs[ATTR]
        group.attrs[ATTR] = {**dict(current), "complete": True}

    def iter_chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(centers int64 [n, 3], vectors float32 [n, dim]) one z position at a time, in grid
        order (z, y, x): memory of one slice of patches."""
        group = zarr.open_group(self._zarr(), mode="r")
        vectors: Any = group["vectors"]
        centers: Any = group["centers"]
        for iz in range(vectors.shape[0]):
            v = np.asarray(vectors[iz])
            c = np.asarray(centers[iz])
            yield c.reshape(-1, 3), v.reshape(-1, v.shape[-1])

    def remove(self) -> None:
        if isinstance(self.path, Path) and isinstance(self.journal_path, Path):
            shutil.rmtree(self.path, ignore_errors=True)
            self.journal_path.unlink(missing_ok=True)
            return
        self.location.delete_tree()
        self.journal_location.unlink()


def stored_keys(volume_store: Location | Path | str) -> list[str]:
    """Space keys with a group in this volume's store."""
    root = _volume(volume_store) / GROUP
    folders, _files = root.list_dir()
    return [name for name in folders if (root / name / "zarr.json").exists()]
