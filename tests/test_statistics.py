"""Streaming sha256 and voxel statistics against hashlib and numpy on the whole array."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from emingest.statistics import HIST_BINS, StreamingDigest, VoxelStatistics

EXACT_INT_CASES = [
    ("uint8", 0, 255),
    ("uint8", 17, 40),
    ("int8", -128, 127),
    ("uint16", 0, 65535),
    ("uint16", 1000, 1300),
    ("int16", -32768, 32767),
    ("int16", -50, 70),
]
WIDE_INT_CASES = [
    ("int32", -(2**31), 2**31 - 1),
    ("int32", -5, 1_000_000),
    ("uint32", 0, 2**32 - 1),
]


def random_volume(dtype: str, lo: float, hi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(2, 12, size=3))
    if np.dtype(dtype).kind == "f":
        return rng.normal(lo, hi, size=shape).astype(dtype)
    return rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64).astype(dtype)


def uneven_bands(a: np.ndarray, seed: int) -> list[np.ndarray]:
    """Whole rows in C order, cut at random places (some bands one row, some many planes)."""
    rows = a.reshape(-1, a.shape[-1])
    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, min(6, rows.shape[0])))
    cuts = np.sort(rng.choice(np.arange(1, rows.shape[0]), size=k, replace=False))
    return [rows[i:j] for i, j in zip([0, *cuts], [*cuts, rows.shape[0]], strict=True)]


def digest_of(blocks: list[np.ndarray], dtype: np.dtype) -> tuple[str, VoxelStatistics | None]:
    d = StreamingDigest(dtype)
    for b in blocks:
        d.update(b)
    return d.sha256, d.result()


def assert_moments(stats: VoxelStatistics, values: np.ndarray, rel: float) -> None:
    v = values.astype(np.float64).ravel()
    assert stats.count == v.size
    assert stats.min == v.min()
    assert stats.max == v.max()
    assert stats.mean == pytest.approx(v.mean(), rel=rel, abs=1e-12)
    assert stats.std == pytest.approx(v.std(), rel=rel, abs=1e-12)


def assert_histogram_close(stats: VoxelStatistics, values: np.ndarray) -> None:
    """Binned streaming histograms may move a value only across an edge it lies next to."""
    v = values.astype(np.float64).ravel()
    edges = np.asarray(stats.histogram.bin_edges)
    counts = np.asarray(stats.histogram.counts)
    assert edges.size == HIST_BINS + 1 and counts.size == HIST_BINS
    assert edges[0] == v.min() and edges[-1] == v.max()
    assert counts.sum() == v.size
    expected = np.histogram(v, bins=edges)[0]
    width = (v.max() - v.min()) / HIST_BINS
    ours, theirs = np.cumsum(counts)[:-1], np.cumsum(expected)[:-1]
    near_edge = np.array([(np.abs(v - e) <= width).sum() for e in edges[1:-1]])
    assert (np.abs(ours - theirs) <= near_edge).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("dtype", "lo", "hi"), EXACT_INT_CASES)
def test_small_integers_exact(dtype: str, lo: int, hi: int, seed: int) -> None:
    a = random_volume(dtype, lo, hi, seed)
    sha, stats = digest_of(uneven_bands(a, seed), a.dtype)
    assert sha == hashlib.sha256(a.tobytes()).hexdigest()
    assert stats is not None
    assert_moments(stats, a, rel=1e-9)
    counts = np.asarray(stats.histogram.counts)
    assert counts.size == HIST_BINS
    assert counts.sum() == a.size
    # each value's bin is floor((v - min) * 256 / (max - min + 1)), in exact integers
    v = a.astype(np.int64).ravel()
    vmin, vmax = int(v.min()), int(v.max())
    bins = ((v - vmin) * HIST_BINS) // (vmax - vmin + 1)
    np.testing.assert_array_equal(counts, np.bincount(bins, minlength=HIST_BINS))
    # and the edges say the same thing to numpy
    np.testing.assert_array_equal(
        counts, np.histogram(v, bins=np.asarray(stats.histogram.bin_edges))[0]
    )


@pytest.mark.parametrize(("dtype", "lo", "hi"), EXACT_INT_CASES)
def test_small_integer_results_do_not_depend_on_the_band_split(
    dtype: str, lo: int, hi: int
) -> None:
    a = random_volume(dtype, lo, hi, seed=7)
    whole = digest_of([a], a.dtype)
    assert digest_of(list(a.reshape(-1, a.shape[-1])), a.dtype) == whole  # row by row
    assert digest_of(list(a), a.dtype) == whole  # plane by plane
    for seed in range(3):
        assert digest_of(uneven_bands(a, seed), a.dtype) == whole


@pytest.mark.parametrize(("dtype", "lo", "hi"), WIDE_INT_CASES)
def test_wide_integer_exact_parts_do_not_depend_on_the_band_split(
    dtype: str, lo: int, hi: int
) -> None:
    """32-bit types use float moments and a binned histogram (see the module docstring): only
    the digest, count, min and max are exact; mean and std agree to rounding."""
    a = random_volume(dtype, lo, hi, seed=7)
    sha, whole = digest_of([a], a.dtype)
    assert whole is not None
    for blocks in (list(a.reshape(-1, a.shape[-1])), uneven_bands(a, 1)):
        sha_b, other = digest_of(blocks, a.dtype)
        assert other is not None
        assert sha_b == sha
        assert (other.count, other.min, other.max) == (whole.count, whole.min, whole.max)
        assert other.mean == pytest.approx(whole.mean, rel=1e-12)
        assert other.std == pytest.approx(whole.std, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("dtype", "lo", "hi"), WIDE_INT_CASES)
def test_wide_integers(dtype: str, lo: int, hi: int, seed: int) -> None:
    a = random_volume(dtype, lo, hi, seed)
    sha, stats = digest_of(uneven_bands(a, seed), a.dtype)
    assert sha == hashlib.sha256(a.tobytes()).hexdigest()
    assert stats is not None
    assert_moments(stats, a, rel=1e-9)
    assert_histogram_close(stats, a)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("dtype", "mean", "std"), [("float32", 100.0, 20.0), ("float64", -3, 1e-3)]
)
def test_floats(dtype: str, mean: float, std: float, seed: int) -> None:
    a = random_volume(dtype, mean, std, seed)
    sha, stats = digest_of(uneven_bands(a, seed), a.dtype)
    assert sha == hashlib.sha256(a.tobytes()).hexdigest()
    assert stats is not None
    assert_moments(stats, a, rel=1e-6)
    assert_histogram_close(stats, a)


def test_float_range_that_grows_both_ways() -> None:
    """First band narrow, later bands wider on both sides: the histogram range must grow."""
    rng = np.random.default_rng(3)
    parts = [
        np.full((1, 4, 5), 10.0),
        rng.uniform(10, 11, (2, 4, 5)),
        rng.uniform(-500, 10, (3, 4, 5)),
        rng.uniform(0, 3000, (2, 4, 5)),
    ]
    a = np.concatenate(parts).astype(np.float32)
    sha, stats = digest_of([p.astype(np.float32) for p in parts], a.dtype)
    assert sha == hashlib.sha256(a.tobytes()).hexdigest()
    assert stats is not None
    assert_moments(stats, a, rel=1e-6)
    assert_histogram_close(stats, a)


def test_non_finite_floats_hashed_but_not_counted() -> None:
    a = random_volume("float32", 5.0, 2.0, seed=4)
    a.flat[::7] = np.nan
    a.flat[3] = np.inf
    a.flat[5] = -np.inf
    sha, stats = digest_of(uneven_bands(a, 4), a.dtype)
    assert sha == hashlib.sha256(a.tobytes()).hexdigest()
    assert stats is not None
    assert_moments(stats, a[np.isfinite(a)], rel=1e-6)


@pytest.mark.parametrize(
    ("dtype", "lo", "hi"), [("uint16", 0, 65535), ("int16", -32768, 32767), ("float32", 0, 9)]
)
def test_big_endian_input_hashes_native_values(dtype: str, lo: float, hi: float) -> None:
    a = random_volume(dtype, lo, hi, seed=5)
    big = a.astype(np.dtype(dtype).newbyteorder(">"))
    assert big.tobytes() != a.tobytes()  # the test means something on this machine
    native_sha = hashlib.sha256(a.tobytes()).hexdigest()
    expected = digest_of(uneven_bands(a, 5), a.dtype)[1]
    for declared in (big.dtype, a.dtype):
        sha, stats = digest_of(uneven_bands(big, 5), declared)
        assert sha == native_sha
        assert stats == expected


def test_empty_digest() -> None:
    for dtype in ("uint8", "int16", "float32"):
        d = StreamingDigest(np.dtype(dtype))
        assert d.result() is None
        assert d.sha256 == hashlib.sha256(b"").hexdigest()


def test_constant_integer_volume() -> None:
    a = np.full((3, 4, 5), 1234, dtype=np.uint16)
    _, stats = digest_of([a], a.dtype)
    assert stats is not None
    assert (stats.min, stats.max, stats.mean, stats.std) == (1234, 1234, 1234.0, 0.0)
    assert stats.histogram.counts[0] == a.size
    assert sum(stats.histogram.counts) == a.size
