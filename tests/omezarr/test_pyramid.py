"""2x mean downsampling against a float64 ``reshape().mean()`` reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emingest.omezarr.metadata import downsampled_shape
from emingest.omezarr.pyramid import downsample_mean, downsample_mean2, downsample_mode

FAST = settings(max_examples=60, deadline=None)

INT_DTYPES = ["uint8", "uint16", "int16", "int8", "int32", "uint32"]
shapes = st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7))


def reference_mean2(a: np.ndarray) -> np.ndarray:
    """Edge-replicate odd axes, average 2x2x2 blocks in float64, round half up for ints."""
    padded = np.pad(a.astype(np.float64), [(0, n % 2) for n in a.shape], mode="edge")
    z, y, x = (n // 2 for n in padded.shape)
    mean = padded.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))
    if a.dtype.kind in "ui":
        return np.floor(mean + 0.5)
    return mean


@FAST
@given(data=st.data(), dtype=st.sampled_from(INT_DTYPES), shape=shapes)
def test_integer_mean_matches_reference(data: st.DataObject, dtype: str, shape: tuple) -> None:
    a = data.draw(hnp.arrays(np.dtype(dtype), shape))
    out = downsample_mean2(a)
    assert out.dtype == a.dtype
    assert out.shape == downsampled_shape(a.shape)
    # compare values, not bit patterns: an overflow would wrap and not match
    np.testing.assert_array_equal(out.astype(np.float64), reference_mean2(a))


@FAST
@given(
    data=st.data(),
    shape=shapes,
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_float_mean_matches_reference(data: st.DataObject, shape: tuple, dtype: str) -> None:
    width = 32 if dtype == "float32" else 64
    elements = st.floats(-1e6, 1e6, width=width, allow_nan=False, allow_infinity=False)
    a = data.draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))
    out = downsample_mean2(a)
    assert out.dtype == a.dtype
    assert out.shape == downsampled_shape(a.shape)
    eps = np.finfo(a.dtype).eps
    scale = float(np.abs(a).max(initial=0.0))
    np.testing.assert_allclose(out, reference_mean2(a), rtol=0, atol=8 * eps * scale + 1e-30)


@FAST
@given(
    dtype=st.sampled_from([*INT_DTYPES, "float32", "float64"]),
    shape=shapes,
    pick=st.floats(0, 1),
)
def test_constant_blocks_stay_constant(dtype: str, shape: tuple, pick: float) -> None:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        value = dt.type(-3.25 + 1000 * pick)
    else:
        info = np.iinfo(dt)
        value = dt.type(int(info.min + pick * (int(info.max) - int(info.min))))
    a = np.full(shape, value, dtype=dt)
    out = downsample_mean2(a)
    assert out.dtype == dt
    assert (out == value).all()


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        ("uint8", 0, 255),
        ("uint16", 0, 65535),
        ("int16", -32768, 32767),
        ("int8", -128, 127),
        ("int32", -(2**31), 2**31 - 1),
    ],
)
def test_extreme_values_do_not_overflow(dtype: str, low: int, high: int) -> None:
    a = np.full((4, 4, 5), high, dtype=dtype)
    # first 2x2x2 block: all low; second: half low, half high; rest: all high
    a[0:2, 0:2, 0:2] = low
    a[0:2, 0:2, 2:4][0] = low
    out = downsample_mean2(a)
    assert out[0, 0, 0] == low
    assert out[0, 0, 1] == np.floor((low + high) / 2 + 0.5)
    assert (out[1:] == high).all()
    assert out[0, 0, 2] == high  # odd edge of all-high voxels
    np.testing.assert_array_equal(out.astype(np.float64), reference_mean2(a))


def test_rounds_half_up_for_negative_and_positive() -> None:
    # sums of 8 ending in .5 after division: -4/8 -> 0, 4/8 -> 1, -12/8 -> -1, 12/8 -> 2
    for total, expected in [(-4, 0), (4, 1), (-12, -1), (12, 2), (-5, -1), (3, 0)]:
        a = np.zeros((2, 2, 2), dtype=np.int16)
        a.flat[0] = total
        assert downsample_mean2(a)[0, 0, 0] == expected, total


def test_non_3d_block_rejected() -> None:
    with pytest.raises(ValueError, match="3-D"):
        downsample_mean2(np.zeros((4, 4), dtype=np.uint8))


factors = st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 2]), st.sampled_from([1, 2]))


def _blocks(a: np.ndarray, factor: tuple[int, int, int]):
    """(output index, the input voxels that output voxel covers) for every output voxel."""
    out_shape = downsampled_shape(a.shape, factor)
    for idx in np.ndindex(out_shape):
        sl = tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factor, strict=True))
        yield idx, a[sl]


@FAST
@given(data=st.data(), dtype=st.sampled_from(INT_DTYPES), shape=shapes, factor=factors)
def test_mean_by_per_axis_factors_matches_reference(
    data: st.DataObject, dtype: str, shape: tuple, factor: tuple
) -> None:
    a = data.draw(hnp.arrays(np.dtype(dtype), shape))
    out = downsample_mean(a, factor)
    assert out.dtype == a.dtype
    assert out.shape == downsampled_shape(shape, factor)
    for idx, block in _blocks(a, factor):
        # an odd edge averages the voxels it has
        assert out[idx] == np.floor(block.astype(np.float64).mean() + 0.5), (idx, block)


def test_mean_factor_one_axis_is_untouched() -> None:
    a = np.arange(2 * 4 * 6, dtype=np.uint16).reshape(2, 4, 6)
    out = downsample_mean(a, (1, 2, 2))
    assert out.shape == (2, 2, 3)
    assert out[1, 0, 0] == round((a[1, 0, 0] + a[1, 0, 1] + a[1, 1, 0] + a[1, 1, 1]) / 4 + 0.01)


def reference_mode(block: np.ndarray) -> int:
    values, counts = np.unique(block, return_counts=True)
    return int(values[np.argmax(counts)])  # unique sorts: the first maximum is the smallest


@FAST
@given(
    data=st.data(),
    shape=shapes,
    factor=factors,
    dtype=st.sampled_from(["uint8", "uint32", "int64"]),
)
def test_mode_is_the_most_frequent_label_ties_to_smaller(
    data: st.DataObject, shape: tuple, factor: tuple, dtype: str
) -> None:
    # few distinct labels, so ties and majorities both occur
    a = data.draw(hnp.arrays(np.dtype(dtype), shape, elements=st.integers(0, 3)))
    out = downsample_mode(a, factor)
    assert out.dtype == a.dtype
    assert out.shape == downsampled_shape(shape, factor)
    for idx, block in _blocks(a, factor):
        assert out[idx] == reference_mode(block), (idx, block)


def test_mode_worked_examples() -> None:
    a = np.full((2, 2, 2), 7, dtype=np.uint16)
    a[0, 0, 0] = 3  # first voxel is a minority: nearest sampling would say 3
    assert downsample_mode(a)[0, 0, 0] == 7
    b = np.array([5, 5, 5, 5, 2, 2, 2, 2], dtype=np.uint8).reshape(2, 2, 2)
    assert downsample_mode(b)[0, 0, 0] == 2  # a tie goes to the smaller label
    c = np.array([[[9]], [[4]], [[4]]], dtype=np.uint8)  # odd z edge: the last voxel alone
    np.testing.assert_array_equal(downsample_mode(c, (2, 1, 1))[:, 0, 0], [4, 4])


def test_factors_must_be_one_or_two() -> None:
    with pytest.raises(ValueError, match="1 or 2"):
        downsample_mode(np.zeros((4, 4, 4), np.uint8), (3, 1, 1))
