"""Existing Zarr arrays (v2 and v3) and OME-Zarr images as inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from emingest.errors import UnsupportedFormatError
from emingest.formats import open_volume
from emingest.formats.zarr_array import ZarrVolume


def random_data(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 5, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def random_regions(shape: tuple[int, int, int], n: int, seed: int):
    rng = np.random.default_rng(seed)
    yield tuple(slice(0, s) for s in shape)
    for _ in range(n):
        region = []
        for s in shape:
            a = int(rng.integers(0, s))
            region.append(slice(a, int(rng.integers(a + 1, s + 1))))
        yield tuple(region)


def write_array(path: Path, a: np.ndarray, zarr_format: int, chunks=(2, 3, 4)) -> None:
    arr = zarr.create_array(
        store=str(path), shape=a.shape, chunks=chunks[-a.ndim :], dtype=a.dtype,
        zarr_format=zarr_format,
    )  # fmt: skip
    arr[...] = a


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "float32"])
def test_array_regions_read_back_exactly(tmp_path: Path, zarr_format: int, dtype: str) -> None:
    a = random_data(dtype, (5, 7, 9))
    path = tmp_path / "a.zarr"
    write_array(path, a, zarr_format)
    expected = zarr.open_array(str(path), mode="r")
    vol = open_volume(path)
    assert isinstance(vol, ZarrVolume)
    assert vol.shape == a.shape
    assert vol.dtype == a.dtype
    assert vol.voxel_size_nm is None
    for region in random_regions(vol.shape, 20, seed=zarr_format):
        got = vol.read(region)
        assert got.dtype.isnative and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected[region])
    np.testing.assert_array_equal(vol.read(tuple(slice(0, n) for n in a.shape)), a)


def test_big_endian_v2_array_reads_native_values(tmp_path: Path) -> None:
    a = random_data("uint16", (4, 5, 6), seed=3)
    path = tmp_path / "be.zarr"
    write_array(path, a.astype(">u2"), 2)
    assert zarr.open_array(str(path), mode="r").dtype == np.dtype(">u2")
    vol = open_volume(path)
    assert vol.dtype == np.dtype("uint16")
    got = vol.read((slice(0, 4), slice(0, 5), slice(0, 6)))
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_two_dimensional_array_is_one_plane(tmp_path: Path, zarr_format: int) -> None:
    a = random_data("uint8", (7, 9), seed=4)
    path = tmp_path / "p.zarr"
    write_array(path, a, zarr_format)
    vol = open_volume(path)
    assert vol.shape == (1, 7, 9)
    np.testing.assert_array_equal(vol.read((slice(0, 1), slice(1, 6), slice(2, 9)))[0], a[1:6, 2:])
    assert vol.read((slice(1, 1), slice(0, 7), slice(0, 9))).shape == (0, 7, 9)


def test_four_dimensional_array_rejected(tmp_path: Path) -> None:
    path = tmp_path / "4d.zarr"
    write_array(path, np.zeros((2, 2, 2, 2), np.uint8), 3, chunks=(1, 2, 2, 2))
    with pytest.raises(UnsupportedFormatError, match="4 dimensions"):
        open_volume(path)


def _ngff_attrs(unit: str, scale0: list[float], version: str) -> dict:
    axes = [{"name": a, "type": "space", "unit": unit} for a in "zyx"]
    datasets = [
        {
            "path": f"s{k}",
            "coordinateTransformations": [
                {"type": "scale", "scale": [s * 2**k for s in scale0]},
                {"type": "translation", "translation": [0.0, 0.0, 0.0]},
            ],
        }
        for k in range(2)
    ]
    ms = {"axes": axes, "datasets": datasets, "name": "img"}
    if version == "0.4":
        return {"multiscales": [{**ms, "version": "0.4"}]}
    return {"ome": {"version": "0.5", "multiscales": [ms]}}


@pytest.mark.parametrize(
    ("zarr_format", "version", "unit", "scale0", "expected_nm"),
    [
        (3, "0.5", "nanometer", [30.0, 4.0, 4.0], (30.0, 4.0, 4.0)),
        (3, "0.5", "micrometer", [0.03, 0.004, 0.005], (30.0, 4.0, 5.0)),
        (2, "0.4", "micrometer", [0.03, 0.004, 0.005], (30.0, 4.0, 5.0)),
        (2, "0.4", "angstrom", [300.0, 40.0, 40.0], (30.0, 4.0, 4.0)),
    ],
)
def test_ome_zarr_image_gives_level0_and_nm(
    tmp_path: Path,
    zarr_format: int,
    version: str,
    unit: str,
    scale0: list[float],
    expected_nm: tuple,
) -> None:
    a0 = random_data("uint16", (6, 8, 10), seed=5)
    path = tmp_path / "img.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    s0 = group.create_array("s0", shape=a0.shape, chunks=(3, 4, 5), dtype=a0.dtype)
    s0[...] = a0
    s1 = group.create_array("s1", shape=(3, 4, 5), chunks=(3, 4, 5), dtype=a0.dtype)
    s1[...] = 7
    group.attrs.update(_ngff_attrs(unit, scale0, version))
    vol = open_volume(path)
    assert vol.shape == a0.shape
    assert vol.voxel_size_nm == pytest.approx(expected_nm, rel=1e-9)
    assert vol.voxel_size_origin
    assert vol.header["multiscales"]["datasets"][0]["path"] == "s0"
    for region in random_regions(vol.shape, 10, seed=6):
        np.testing.assert_array_equal(vol.read(region), a0[region])


def test_ome_zarr_without_length_unit_has_no_voxel_size(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("s0", shape=(2, 3, 4), chunks=(2, 3, 4), dtype="uint8")
    attrs = _ngff_attrs("nanometer", [1.0, 1.0, 1.0], "0.5")
    for axis in attrs["ome"]["multiscales"][0]["axes"]:
        del axis["unit"]
    attrs["ome"]["multiscales"][0]["datasets"] = attrs["ome"]["multiscales"][0]["datasets"][:1]
    group.attrs.update(attrs)
    vol = open_volume(path)
    assert vol.shape == (2, 3, 4)
    assert vol.voxel_size_nm is None


def test_group_without_multiscales_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plain.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("data", shape=(2, 3, 4), chunks=(2, 3, 4), dtype="uint8")
    with pytest.raises(UnsupportedFormatError, match="multiscales"):
        open_volume(path)


def test_group_without_multiscales_error_names_the_store(tmp_path: Path) -> None:
    path = tmp_path / "plain.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("data", shape=(2, 3, 4), chunks=(2, 3, 4), dtype="uint8")
    with pytest.raises(UnsupportedFormatError, match=r"plain\.zarr"):
        open_volume(path)
