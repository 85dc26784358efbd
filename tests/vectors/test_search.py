"""Search by example over a volume of known textured classes, ingested and embedded for real."""

from __future__ import annotations

import numpy as np
import pytest

from emingest.config import Settings
from emingest.errors import ConfigError, EntryNotFoundError
from emingest.vectors import search_array, search_like, search_vector, sync_index
from emingest.vectors.embed import make_encoder
from emingest.vectors.store import EmbeddingStore

from .conftest import Textured

# The benchmark (benchmarks/vectors_quality.py) measures precision@10 0.98 for the default
# embedder on these textures; a search here must find at least 7 of 10 of its own class.
MIN_PRECISION = 0.7


def query_points(t: Textured) -> list[tuple[int, int, int]]:
    """One patch centre inside each region of the volume (a patch of 64 px at 8 nm)."""
    return [(2, 64 + 128 * ry, 64 + 128 * rx) for ry in range(3) for rx in range(5)]


def test_search_from_a_patch_returns_mostly_its_class(textured: Textured) -> None:
    precisions = []
    for zyx in query_points(textured):
        hits = search_like(textured.settings, textured.record_id, zyx, k=10)
        assert len(hits) == 10
        same = [textured.class_at(h.center_zyx) == textured.class_at(zyx) for h in hits]
        precisions.append(np.mean(same))
        assert hits[0].distance <= hits[-1].distance
    assert np.mean(precisions) >= MIN_PRECISION, precisions
    assert min(precisions) >= 0.5, precisions


def test_hit_fields_are_plain_json(textured: Textured) -> None:
    # grid patches are 64 px from y, x = 0 (centres 32, 96, ...) on slices 0, 2, 4, 6
    [hit] = search_like(textured.settings, textured.record_id, (2, 96, 160), k=1)
    d = hit.to_dict()
    assert d["record_id"] == textured.record_id
    assert d["level"] == 0
    assert d["center_zyx"] == [2, 96, 160]
    assert d["center_nm"] == [16.0, 768.0, 1280.0]
    assert d["distance"] == pytest.approx(0.0, abs=1e-4)  # the patch itself, indexed


def test_search_by_array_finds_the_class_of_the_image(textured: Textured) -> None:
    y0, x0 = 128, 256
    cls = textured.class_at((3, y0, x0))
    image = textured.volume[3, y0 : y0 + 64, x0 : x0 + 64]
    hits = search_array(textured.settings, image, k=10)
    assert sum(textured.class_at(h.center_zyx) == cls for h in hits) >= 7


def test_search_by_vector_checks_dimension_and_k(textured: Textured) -> None:
    dim = make_encoder(textured.settings).dim
    assert len(search_vector(textured.settings, np.ones(dim, np.float32), k=3)) == 3
    with pytest.raises(ConfigError):
        search_vector(textured.settings, np.ones(dim), k=0)


def test_unknown_volume_and_outside_point_are_clear_errors(textured: Textured) -> None:
    with pytest.raises(EntryNotFoundError):
        search_like(textured.settings, "local/none/none", (0, 0, 0))
    with pytest.raises(ConfigError, match="outside"):
        search_like(textured.settings, textured.record_id, (0, 9999, 0))


def test_stored_vectors_cover_the_grid(textured: Textured) -> None:
    encoder = make_encoder(textured.settings)
    store = EmbeddingStore(textured.store, encoder.space.key)
    attrs = store.attrs()
    assert attrs is not None and attrs["complete"] is True
    assert attrs["embedder"]["name"] == "scattering"
    assert attrs["embedder"]["params"]["patch_nm"] == 512.0
    chunks = list(store.iter_chunks())
    assert [len(c) for c, _ in chunks] == [60, 60, 60, 60]
    centers = np.concatenate([c for c, _ in chunks])
    vectors = np.concatenate([v for _, v in chunks])
    assert vectors.shape == (240, encoder.dim) and np.isfinite(vectors).all()
    assert sorted(set(centers[:, 0])) == [0, 2, 4, 6]
    assert sorted(set(centers[:, 1])) == [32 + 64 * i for i in range(6)]
    # a vector is the embedding of the voxels around its centre, recomputed here
    z, y, x = centers[17]
    patch = textured.volume[z, y - 32 : y + 32, x - 32 : x + 32]
    mean, std = attrs["normalisation"]["mean"], attrs["normalisation"]["std"]
    expected = encoder.encode(((patch - mean) / std).astype(np.float32)[None, None])[0]
    np.testing.assert_allclose(vectors[17], expected, rtol=1e-4, atol=1e-4)
    assert EmbeddingStore(textured.store, "other-1-00000000").attrs() is None


def test_sync_rebuilds_an_identical_index(isolated: Settings, textured: Textured) -> None:
    counts = sync_index(isolated)
    assert list(counts.values()) == [4 * 6 * 10]
    before = [
        [h.to_dict() for h in search_like(isolated, textured.record_id, p, k=10)]
        for p in query_points(textured)
    ]
    (isolated.embed.index_dir / f"{next(iter(counts))}.faiss").unlink()  # type: ignore[operator]
    assert sync_index(isolated) == counts
    after = [
        [h.to_dict() for h in search_like(isolated, textured.record_id, p, k=10)]
        for p in query_points(textured)
    ]
    assert after == before
