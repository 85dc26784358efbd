"""2x mean downsampling against a float64 ``reshape().mean()`` reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emingest.omezarr.metadata import downsampled_shape
from emingest.omezarr.pyramid import downsample_mean2, downsample_nearest2

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


@FAST
@given(data=st.data(), shape=shapes)
def test_nearest_takes_every_second_voxel(data: st.DataObject, shape: tuple) -> None:
    a = data.draw(hnp.arrays(np.uint32, shape))
    out = downsample_nearest2(a)
    assert out.shape == downsampled_shape(shape)
    for idx in np.ndindex(out.shape):
        assert out[idx] == a[tuple(2 * i for i in idx)]
