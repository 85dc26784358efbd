"""Search by example: by a patch of a catalog volume, by an image array, or by a vector."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emingest.catalog import open_catalog
from emingest.errors import ConfigError, EntryNotFoundError
from emingest.records import VolumeRecord
from emingest.vectors.backends import open_vector_index
from emingest.vectors.embed import (
    make_encoder,
    read_region,
    stored_vectors,
    volume_grid,
    volume_location,
    volume_normalisation,
)
from emingest.vectors.encoder import PatchEncoder, normalise
from emingest.vectors.index import SearchHit, make_filters
from emingest.vectors.store import EmbeddingStore

if TYPE_CHECKING:
    from emingest.config import Settings

log = logging.getLogger(__name__)


def search_vector(
    settings: Settings,
    vector: np.ndarray,
    *,
    k: int = 10,
    source: str | None = None,
    where: str | Sequence[str] | None = None,
    model: str | None = None,
    space_key: str | None = None,
) -> list[SearchHit]:
    """The ``k`` patches nearest to ``vector`` in the space of ``model`` (default: the first
    configured embedder) or of ``space_key``."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    key = space_key or make_encoder(settings, model).space.key
    filters = make_filters(source=source, where=where)
    with _index(settings) as index:
        return index.search(key, np.asarray(vector, np.float32), k, filters)


def patch_vector(
    settings: Settings, record_id: str, zyx: Sequence[int], *, model: str | None = None
) -> tuple[np.ndarray, str]:
    """(vector, space key) of the patch centred nearest to level-0 voxel ``zyx`` of a volume,
    cut as that volume's stored vectors were (same level, size and normalisation)."""
    encoder = make_encoder(settings, model)
    with open_catalog(settings) as catalog:
        row = catalog.get(record_id)
    if row is None:
        raise EntryNotFoundError(
            f"no volume {record_id!r} in the catalog (`emingest catalog list`)"
        )
    record = VolumeRecord.model_validate(row.record)
    if not record.is_complete:
        raise EntryNotFoundError(f"{record_id}: not complete ({record.status})")
    shape0 = tuple(record.volume_shape or ())
    if len(zyx) != 3 or any(not 0 <= int(c) < n for c, n in zip(zyx, shape0, strict=False)):
        raise ConfigError(f"--at {tuple(zyx)} is outside {record_id} (shape {shape0})")
    volume_path = volume_location(settings, record.local_paths.volume)
    store = EmbeddingStore(volume_path, encoder.space.key)
    attrs = store.attrs()
    if attrs:
        grid = store.grid()
        norm = attrs["normalisation"]
        mean, std = float(norm["mean"]), float(norm["std"])
    else:
        grid = volume_grid(settings, record, encoder)
        mean, std = volume_normalisation(record)
    z0, y0, x0 = grid.start_for_center0((int(zyx[0]), int(zyx[1]), int(zyx[2])))
    pz, py, px = grid.patch_px
    region = (slice(z0, z0 + pz), slice(y0, y0 + py), slice(x0, x0 + px))
    data = read_region(volume_path, grid.level_path, region)
    if data.shape != (pz, py, px):
        raise ConfigError(f"{record_id}: smaller than one {settings.embed.patch_nm:g} nm patch")
    return encoder.encode(normalise(data, mean, std)[None])[0], encoder.space.key


def search_like(
    settings: Settings,
    record_id: str,
    zyx: Sequence[int],
    *,
    k: int = 10,
    source: str | None = None,
    where: str | Sequence[str] | None = None,
    model: str | None = None,
) -> list[SearchHit]:
    """The ``k`` patches of the whole index nearest to the patch at level-0 voxel ``zyx`` of
    volume ``record_id`` (the catalog id); the patch itself comes first when it is indexed."""
    vector, key = patch_vector(settings, record_id, zyx, model=model)
    return search_vector(settings, vector, k=k, source=source, where=where, space_key=key)


def array_vector(encoder: PatchEncoder, array: np.ndarray) -> np.ndarray:
    """The vector of a 2-D image (or a 3-D patch): normalised over itself, resized."""
    data = np.asarray(array)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4:
        data = data[..., :3].mean(axis=-1)  # an RGB(A) picture of a grey image
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or min(data.shape) < 1:
        raise ConfigError(f"search by image needs a 2-D image, got shape {np.shape(array)}")
    std = float(data.std())
    return encoder.encode(normalise(data, float(data.mean()), std)[None])[0]


def search_array(
    settings: Settings,
    array: np.ndarray,
    *,
    k: int = 10,
    source: str | None = None,
    where: str | Sequence[str] | None = None,
    model: str | None = None,
) -> list[SearchHit]:
    """The ``k`` patches nearest to an image (the whole image is the patch)."""
    encoder = make_encoder(settings, model)
    vector = array_vector(encoder, array)
    return search_vector(
        settings, vector, k=k, source=source, where=where, space_key=encoder.space.key
    )


def read_image(path: Path | str) -> np.ndarray:
    """A 2-D image file (TIFF, PNG, JPEG, ...) as an array, for ``--like-image``."""
    path = Path(path)
    if not path.is_file():
        raise EntryNotFoundError(f"image not found: {path}")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ConfigError(f"{path}: not an image this can read (TIFF, PNG, JPEG, BMP)")
    return np.asarray(image)


class _index:
    def __init__(self, settings: Settings) -> None:
        self.index = open_vector_index(settings)

    def __enter__(self) -> Any:
        return self.index

    def __exit__(self, *exc: object) -> None:
        self.index.close()


def sync_index(settings: Settings, *, models: Sequence[str] | None = None) -> dict[str, int]:
    """Rebuild the index of every space found in the stores of complete catalog volumes
    (``models`` limits it); returns vectors per space key. The stores are the truth."""
    from emingest.catalog import CatalogFilters

    with open_catalog(settings) as catalog:
        rows = catalog.query(CatalogFilters(status="complete"))
    wanted = None
    if models is not None:
        wanted = {make_encoder(settings, m).space.key for m in models}
    by_space: dict[str, list[tuple[EmbeddingStore, str, str, str | None]]] = {}
    spaces: dict[str, Any] = {}
    from emingest.vectors.embedders import EmbedderId
    from emingest.vectors.store import stored_keys

    for row in rows:
        relative = row.record.get("local_paths", {}).get("volume")
        if not relative:
            continue
        volume = volume_location(settings, relative)
        for key in stored_keys(volume):
            if wanted is not None and key not in wanted:
                continue
            store = EmbeddingStore(volume, key)
            attrs = store.attrs()
            if not attrs or not attrs.get("complete"):
                log.warning(
                    "%s: embeddings %s incomplete, not indexed (run `emingest embed`)", row.id, key
                )
                continue
            if attrs.get("volume_sha256") != row.sha256:
                log.warning(
                    "%s: embeddings %s are of an older version of the volume, skipped", row.id, key
                )
                continue
            spaces[key] = EmbedderId.from_dict(attrs["embedder"])
            by_space.setdefault(key, []).append((store, row.id, row.source, row.sha256))
    counts: dict[str, int] = {}
    with _index(settings) as index:
        for key in sorted(by_space):
            volumes = [stored_vectors(s, rid, src, sha) for s, rid, src, sha in by_space[key]]
            counts[key] = index.rebuild(spaces[key], volumes)
    return counts
