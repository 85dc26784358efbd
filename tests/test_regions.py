"""Region arithmetic: tiles cover exactly once, budgets hold, bands run in C order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emingest.omezarr.metadata import downsampled_shape
from emingest.omezarr.pyramid import downsample_mean
from emingest.regions import (
    choose_tile,
    coarser_region,
    double_region,
    finer_region,
    format_region,
    half_region,
    iter_tiles,
    plane_bands,
    region_nbytes,
)

FAST = settings(max_examples=60, deadline=None)

dims = st.integers(1, 40)
shapes = st.tuples(dims, dims, dims)
tiles = st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12))
itemsizes = st.sampled_from([1, 2, 4, 8])


def _ceil_to(n: int, a: int) -> int:
    return -(-max(n, 1) // a) * a


@FAST
@given(shape=shapes, tile=tiles)
def test_iter_tiles_cover_every_voxel_once_in_c_order(
    shape: tuple[int, int, int], tile: tuple[int, int, int]
) -> None:
    seen = np.zeros(shape, dtype=np.int32)
    indices = []
    for idx, region in iter_tiles(shape, tile):
        indices.append(idx)
        for s, t, n in zip(region, tile, shape, strict=True):
            assert s.step is None
            assert 0 <= s.start < s.stop <= n
            assert s.stop - s.start <= t
        # the tile index says where the tile is
        assert tuple(s.start for s in region) == tuple(
            i * t for i, t in zip(idx, tile, strict=True)
        )
        seen[region] += 1
    assert (seen == 1).all()
    assert indices == sorted(indices)
    assert len(indices) == np.prod([-(-n // t) for n, t in zip(shape, tile, strict=True)])


@FAST
@given(
    shape=st.tuples(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 5000)),
    align=st.tuples(st.integers(1, 256), st.integers(1, 256), st.integers(1, 256)),
    itemsize=itemsizes,
    budget=st.integers(1, 1 << 28),
)
def test_choose_tile_properties(
    shape: tuple[int, int, int], align: tuple[int, int, int], itemsize: int, budget: int
) -> None:
    tile = choose_tile(shape, align, itemsize, budget)
    full = [_ceil_to(n, a) for n, a in zip(shape, align, strict=True)]
    nbytes = int(np.prod(tile, dtype=np.int64)) * itemsize
    align_bytes = int(np.prod(align, dtype=np.int64)) * itemsize
    for t, a, f in zip(tile, align, full, strict=True):
        assert t % a == 0
        assert a <= t <= f
    if align_bytes <= budget:
        assert nbytes <= budget
    else:
        assert tile == tuple(align)  # one align block is already too big: nothing grows
    # grows x first, then y, then z: an axis grows past one block only when the faster ones
    # are already full
    if tile[2] < full[2]:
        assert tile[:2] == align[:2]
    if tile[1] < full[1]:
        assert tile[0] == align[0]
    # and z is as large as the budget allows
    if tile[0] < full[0]:
        assert (tile[0] + align[0]) * tile[1] * tile[2] * itemsize > budget


@FAST
@given(shape=shapes, itemsize=itemsizes, budget=st.integers(1, 40 * 40 * 40 * 8))
def test_plane_bands_cover_in_c_order_within_budget(
    shape: tuple[int, int, int], itemsize: int, budget: int
) -> None:
    flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    bands = list(plane_bands(shape, itemsize, budget))
    order = np.concatenate([flat[b].ravel() for b in bands])
    np.testing.assert_array_equal(order, np.arange(flat.size))
    row_fits = shape[2] * itemsize <= budget
    for b in bands:
        assert b[2] == slice(0, shape[2])  # whole rows always
        if b[0].stop - b[0].start > 1:
            assert b[1] == slice(0, shape[1])  # several planes: whole planes
        if row_fits:
            assert region_nbytes(b, itemsize) <= budget
        else:
            assert b[0].stop - b[0].start == 1 and b[1].stop - b[1].start == 1


def _mean2_reference(a: np.ndarray) -> np.ndarray:
    a = np.pad(a.astype(np.float64), [(0, n % 2) for n in a.shape], mode="edge")
    z, y, x = (n // 2 for n in a.shape)
    return a.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))


@FAST
@given(
    shape=shapes,
    tile=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    seed=st.integers(0, 2**32 - 1),
)
def test_half_and_double_region_agree_with_downsampling(
    shape: tuple[int, int, int], tile: tuple[int, int, int], seed: int
) -> None:
    tile = tuple(2 * t for t in tile)  # write tiles are even, so their starts are
    half = downsampled_shape(shape)
    a = np.random.default_rng(seed).random(shape)
    whole = _mean2_reference(a)
    assert whole.shape == half
    covered = np.zeros(half, dtype=np.int32)
    for _, region in iter_tiles(shape, tile):
        h = half_region(region, half)
        # downsampling the tile alone gives exactly the part of the whole it maps to
        np.testing.assert_allclose(_mean2_reference(a[region]), whole[h], rtol=0, atol=1e-12)
        covered[h] += 1
        assert double_region(h, shape) == region
    assert (covered == 1).all()


@FAST
@given(shape=shapes, data=st.data())
def test_double_then_half_is_identity(shape: tuple[int, int, int], data: st.DataObject) -> None:
    half = downsampled_shape(shape)
    region = []
    for n in half:
        start = data.draw(st.integers(0, n - 1))
        stop = data.draw(st.integers(start + 1, n))
        region.append(slice(start, stop))
    h = tuple(region)
    full = double_region(h, shape)
    for s, n in zip(full, shape, strict=True):
        assert 0 <= s.start < s.stop <= n
    assert half_region(full, half) == h


def test_region_nbytes_and_format() -> None:
    r = (slice(2, 5), slice(0, 7), slice(10, 11))
    assert region_nbytes(r, 2) == 3 * 7 * 1 * 2
    assert format_region(r) == "2:5,0:7,10:11"


@FAST
@given(
    shape=shapes,
    tile=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    factor=st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 2]), st.sampled_from([1, 2])),
    seed=st.integers(0, 2**32 - 1),
)
def test_coarser_and_finer_region_agree_with_per_axis_downsampling(
    shape: tuple[int, int, int], tile: tuple, factor: tuple, seed: int
) -> None:
    tile = tuple(t * f for t, f in zip(tile, factor, strict=True))  # tiles are block x factor
    coarse = downsampled_shape(shape, factor)
    a = np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)
    whole = downsample_mean(a, factor)
    covered = np.zeros(coarse, dtype=np.int32)
    for _, region in iter_tiles(shape, tile):
        c = coarser_region(region, coarse, factor)
        np.testing.assert_array_equal(downsample_mean(a[region], factor), whole[c])
        covered[c] += 1
        assert finer_region(c, shape, factor) == region
    assert (covered == 1).all()
