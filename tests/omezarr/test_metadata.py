"""Pyramid level planning and NGFF 0.5 attributes, validated by ome-zarr-models."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from ome_zarr_models.v05 import Image

from emingest.omezarr.metadata import (
    NGFF_VERSION,
    downsampled_shape,
    multiscales_attrs,
    next_factor,
    plan_levels,
)

FAST = settings(max_examples=80, deadline=None)

sizes = st.floats(0.1, 1000.0, allow_nan=False)
shapes = st.tuples(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 5000))


@FAST
@given(
    shape=shapes,
    chunk=st.integers(1, 300),
    voxel=st.tuples(sizes, sizes, sizes),
    origin=st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)),
)
def test_plan_levels_geometry(
    shape: tuple[int, int, int], chunk: int, voxel: tuple, origin: tuple
) -> None:
    levels = plan_levels(shape, (chunk,) * 3, voxel, origin_nm=origin)
    assert levels[0].shape == shape
    assert levels[0].factor == (1, 1, 1)
    # stops at the first level that fits in one chunk on every axis, and not before
    assert max(levels[-1].shape) <= chunk
    for lv in levels[:-1]:
        assert max(lv.shape) > chunk
    total = [1, 1, 1]
    for k, lv in enumerate(levels):
        assert lv.path == f"s{k}"
        if k:
            prev = levels[k - 1]
            assert lv.factor == next_factor(prev.shape, prev.voxel_size_nm)
            assert lv.shape == tuple(-(-n // f) for n, f in zip(prev.shape, lv.factor, strict=True))
            total = [t * f for t, f in zip(total, lv.factor, strict=True)]
        for axis in range(3):
            assert lv.voxel_size_nm[axis] == pytest.approx(voxel[axis] * total[axis], rel=1e-12)
            expected = origin[axis] + (total[axis] - 1) / 2 * voxel[axis]
            assert lv.translation_nm[axis] == pytest.approx(expected, rel=1e-12, abs=1e-9)


@FAST
@given(shape=shapes, voxel=st.tuples(sizes, sizes, sizes))
def test_next_factor_halves_the_fine_axes_only(shape: tuple, voxel: tuple) -> None:
    f = next_factor(shape, voxel)
    open_axes = [i for i in range(3) if shape[i] > 1]
    if not open_axes:
        assert f == (1, 1, 1)
        return
    finest = min(voxel[i] for i in open_axes)
    for i in range(3):
        if shape[i] == 1:
            assert f[i] == 1  # an axis of length 1 is never halved
        elif voxel[i] >= 2 * finest * (1 + 1e-6):
            assert f[i] == 1  # already 2x coarser: waits for the others
        elif voxel[i] < 2 * finest * (1 - 1e-6):
            assert f[i] == 2
    assert 2 in f  # some axis always shrinks, so planning ends


def _shapes(levels: list) -> list[tuple[int, int, int]]:
    return [lv.shape for lv in levels]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        # each of these got level 0 only when the pyramid stopped at the first axis to fit
        ((16, 1024, 1024), [(16, 1024, 1024), (8, 512, 512), (4, 256, 256), (2, 128, 128)]),
        ((64, 512, 512), [(64, 512, 512), (32, 256, 256), (16, 128, 128)]),
        (
            (128, 1024, 1024),
            [(128, 1024, 1024), (64, 512, 512), (32, 256, 256), (16, 128, 128)],
        ),
    ],
)
def test_thin_stacks_get_a_pyramid(shape: tuple, expected: list) -> None:
    for voxel in (None, (8.0, 8.0, 8.0)):
        assert _shapes(plan_levels(shape, (128, 128, 128), voxel)) == expected


def test_anisotropic_50x5x5_halves_y_x_until_they_catch_up() -> None:
    levels = plan_levels((64, 4096, 4096), (64, 64, 64), (50.0, 5.0, 5.0))
    assert [lv.factor for lv in levels[:6]] == [
        (1, 1, 1),
        (1, 2, 2),  # 10 nm
        (1, 2, 2),  # 20 nm
        (1, 2, 2),  # 40 nm: now within 2x of z's 50
        (2, 2, 2),
        (2, 2, 2),
    ]
    assert levels[3].voxel_size_nm == (50.0, 40.0, 40.0)
    assert levels[3].shape == (64, 512, 512)
    assert levels[4].voxel_size_nm == (100.0, 80.0, 80.0)
    assert levels[3].translation_nm == (0.0, 17.5, 17.5)
    assert levels[4].translation_nm == (25.0, 37.5, 37.5)
    assert _shapes(levels)[-1] == (8, 64, 64)


def test_empiar_11759_like_stack() -> None:
    """The table of docs/pyramid.md."""
    levels = plan_levels((16, 5500, 5496), (128, 128, 128), (50.0, 7.99825, 7.99825))
    assert _shapes(levels) == [
        (16, 5500, 5496),
        (16, 2750, 2748),
        (16, 1375, 1374),  # 50 x 32 x 32 nm: z is no longer 2x coarser
        (8, 688, 687),
        (4, 344, 344),
        (2, 172, 172),
        (1, 86, 86),
    ]
    assert [lv.factor for lv in levels] == [(1, 1, 1)] + [(1, 2, 2)] * 2 + [(2, 2, 2)] * 4
    assert levels[3].voxel_size_nm == pytest.approx((100.0, 63.986, 63.986))


def test_a_length_one_axis_is_never_halved() -> None:
    levels = plan_levels((1, 1000, 1000), (64, 64, 64), (1.0, 1.0, 1.0))
    assert _shapes(levels) == [
        (1, 1000, 1000),
        (1, 500, 500),
        (1, 250, 250),
        (1, 125, 125),
        (1, 63, 63),
    ]
    # a fine axis of length 1 does not hold the coarser ones back
    assert len(plan_levels((1, 300, 300), (64, 64, 64), (1.0, 50.0, 50.0))) == 4


def test_levels_setting_caps_and_extends() -> None:
    auto = plan_levels((16, 1024, 1024), (128, 128, 128), None)
    assert len(auto) == 4
    assert plan_levels((16, 1024, 1024), (128, 128, 128), None, max_levels=2) == auto[:2]
    more = plan_levels((16, 1024, 1024), (128, 128, 128), None, max_levels=7)
    assert more[:4] == auto
    assert _shapes(more)[4:] == [(1, 64, 64), (1, 32, 32), (1, 16, 16)]
    # never below one voxel: asking for 50 levels ends at 1 x 1 x 1
    tiny = plan_levels((3, 5, 4), (128, 128, 128), None, max_levels=50)
    assert tiny[-1].shape == (1, 1, 1)
    assert len(tiny) == 4


@FAST
@given(shape=shapes, chunk=st.integers(1, 64), max_levels=st.integers(1, 6))
def test_max_levels_respected(shape: tuple[int, int, int], chunk: int, max_levels: int) -> None:
    unlimited = plan_levels(shape, (chunk,) * 3, (1.0, 1.0, 1.0))
    limited = plan_levels(shape, (chunk,) * 3, (1.0, 1.0, 1.0), max_levels=max_levels)
    assert len(limited) <= max_levels
    if len(limited) < max_levels:
        assert limited[-1].shape == (1, 1, 1)
    n = min(len(limited), len(unlimited))
    assert limited[:n] == unlimited[:n]


def test_plan_levels_worked_example() -> None:
    levels = plan_levels((100, 1000, 999), (64, 64, 64), (30.0, 4.0, 4.0))
    assert _shapes(levels)[:3] == [(100, 1000, 999), (100, 500, 500), (100, 250, 250)]
    assert levels[1].voxel_size_nm == (30.0, 8.0, 8.0)
    assert levels[1].translation_nm == (0.0, 2.0, 2.0)


@pytest.mark.parametrize(("n", "half"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)])
def test_downsampled_shape_is_ceil_half(n: int, half: int) -> None:
    assert downsampled_shape((n, n + 1, 2 * n)) == (half, -(-(n + 1) // 2), n)
    assert downsampled_shape((n, n, n), (1, 2, 1)) == (n, half, n)


def _image_group(path: Path, attrs: dict, shapes: list[tuple[int, int, int]]) -> zarr.Group:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    for k, shape in enumerate(shapes):
        group.create_array(
            f"s{k}", shape=shape, chunks=(8, 8, 8), dtype="uint8", dimension_names=["z", "y", "x"]
        )
    group.attrs["ome"] = attrs
    return zarr.open_group(str(path), mode="r")


@pytest.mark.parametrize("method", ["mean", "mode", "copied"])
def test_multiscales_attrs_validate_with_ome_zarr_models(tmp_path: Path, method: str) -> None:
    levels = plan_levels((40, 70, 33), (8, 8, 8), (30.0, 4.0, 4.5), origin_nm=(1.0, 2.0, 3.0))
    assert len(levels) > 2
    assert {lv.factor for lv in levels[1:]} == {(1, 2, 2), (2, 2, 2)}  # per-axis factors
    attrs = multiscales_attrs("vol", levels, method=method)
    group = _image_group(tmp_path / "img.ome.zarr", attrs, [lv.shape for lv in levels])
    image = Image.from_zarr(group)
    ms = image.attributes.ome.multiscales[0]
    assert image.attributes.ome.version == NGFF_VERSION
    assert [a.name for a in ms.axes] == ["z", "y", "x"]
    assert all(a.unit == "nanometer" for a in ms.axes)
    assert [d.path for d in ms.datasets] == [lv.path for lv in levels]
    for ds, lv in zip(ms.datasets, levels, strict=True):
        scale, translation = ds.coordinateTransformations
        assert tuple(scale.scale) == lv.voxel_size_nm
        assert tuple(translation.translation) == lv.translation_nm


def test_multiscales_attrs_rejected_when_arrays_disagree(tmp_path: Path) -> None:
    """The validation above can fail: an array missing from the group is caught."""
    levels = plan_levels((40, 70, 33), (8, 8, 8), (30.0, 4.0, 4.0))
    attrs = multiscales_attrs("vol", levels)
    group = _image_group(tmp_path / "img.ome.zarr", attrs, [lv.shape for lv in levels[:-1]])
    with pytest.raises(ValueError, match=levels[-1].path):
        Image.from_zarr(group)


def test_label_attrs_name_the_image() -> None:
    levels = plan_levels((16, 16, 16), (8, 8, 8), (1.0, 1.0, 1.0))
    attrs = multiscales_attrs("seg", levels, method="mode", label=True)
    assert attrs["image-label"] == {"version": NGFF_VERSION, "source": {"image": "../../"}}
    assert "image-label" not in multiscales_attrs("seg", levels)
