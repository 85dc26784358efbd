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
    # stops at the first level whose smallest axis fits in one chunk, and not before
    assert min(levels[-1].shape) <= chunk
    for lv in levels[:-1]:
        assert min(lv.shape) > chunk
    for k, lv in enumerate(levels):
        assert lv.path == f"s{k}"
        if k:
            prev = levels[k - 1].shape
            assert lv.shape == tuple(-(-n // 2) for n in prev)
        for axis in range(3):
            assert lv.voxel_size_nm[axis] == pytest.approx(voxel[axis] * 2**k, rel=1e-12)
            expected = origin[axis] + (2**k - 1) / 2 * voxel[axis]
            assert lv.translation_nm[axis] == pytest.approx(expected, rel=1e-12, abs=1e-9)


@FAST
@given(shape=shapes, chunk=st.integers(1, 64), max_levels=st.integers(1, 6))
def test_max_levels_respected(shape: tuple[int, int, int], chunk: int, max_levels: int) -> None:
    unlimited = plan_levels(shape, (chunk,) * 3, (1.0, 1.0, 1.0))
    limited = plan_levels(shape, (chunk,) * 3, (1.0, 1.0, 1.0), max_levels=max_levels)
    assert len(limited) == min(max_levels, len(unlimited))
    assert limited == unlimited[: len(limited)]


def test_plan_levels_worked_example() -> None:
    levels = plan_levels((100, 1000, 999), (64, 64, 64), (30.0, 4.0, 4.0))
    assert [lv.shape for lv in levels] == [(100, 1000, 999), (50, 500, 500)]
    assert levels[1].voxel_size_nm == (60.0, 8.0, 8.0)
    assert levels[1].translation_nm == (15.0, 2.0, 2.0)
    assert len(plan_levels((1, 1000, 1000), (64, 64, 64), (1.0, 1.0, 1.0))) == 1


@pytest.mark.parametrize(("n", "half"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)])
def test_downsampled_shape_is_ceil_half(n: int, half: int) -> None:
    assert downsampled_shape((n, n + 1, 2 * n)) == (half, -(-(n + 1) // 2), n)


def _image_group(path: Path, attrs: dict, shapes: list[tuple[int, int, int]]) -> zarr.Group:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    for k, shape in enumerate(shapes):
        group.create_array(
            f"s{k}", shape=shape, chunks=(8, 8, 8), dtype="uint8", dimension_names=["z", "y", "x"]
        )
    group.attrs["ome"] = attrs
    return zarr.open_group(str(path), mode="r")


@pytest.mark.parametrize("method", ["mean", "nearest", "copied"])
def test_multiscales_attrs_validate_with_ome_zarr_models(tmp_path: Path, method: str) -> None:
    levels = plan_levels((40, 70, 33), (8, 8, 8), (30.0, 4.0, 4.5), origin_nm=(1.0, 2.0, 3.0))
    assert len(levels) > 2
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
    attrs = multiscales_attrs("seg", levels, method="nearest", label=True)
    assert attrs["image-label"] == {"version": NGFF_VERSION, "source": {"image": "../../"}}
    assert "image-label" not in multiscales_attrs("seg", levels)
