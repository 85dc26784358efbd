"""MRC volumes: exact region reads, Å to nm in z, y, x order, headers that lie."""

from __future__ import annotations

import struct
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from emingest.errors import ConversionError
from emingest.formats import open_volume
from emingest.formats.mrc import MrcVolume


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
            b = int(rng.integers(a + 1, s + 1))
            region.append(slice(a, b))
        yield tuple(region)


def write_mrc(path: Path, data: np.ndarray, voxel_size=None) -> None:
    with mrcfile.new(path, data=data, overwrite=True) as mrc:
        if voxel_size is not None:
            mrc.voxel_size = voxel_size


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint16", "float32"])
@pytest.mark.parametrize("suffix", [".mrc", ".rec", ".map"])
def test_regions_match_mrcfile(tmp_path: Path, dtype: str, suffix: str) -> None:
    a = random_data(dtype, (5, 9, 11))
    path = tmp_path / f"v{suffix}"
    write_mrc(path, a)
    expected = mrcfile.read(path)
    vol = open_volume(path)
    assert isinstance(vol, MrcVolume)
    assert vol.shape == a.shape
    assert vol.dtype == np.dtype(dtype)
    for region in random_regions(vol.shape, 20, seed=1):
        got = vol.read(region)
        assert got.dtype.isnative and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected[region])
    np.testing.assert_array_equal(vol.read(tuple(slice(0, n) for n in a.shape)), a)
    vol.close()


def test_voxel_size_angstrom_to_nm_in_zyx_order(tmp_path: Path) -> None:
    path = tmp_path / "v.mrc"
    write_mrc(path, random_data("float32", (4, 6, 8)), voxel_size=(10.0, 20.0, 35.0))  # x, y, z Å
    with mrcfile.open(path) as m:
        vs = m.voxel_size
        expected = (float(vs.z) / 10, float(vs.y) / 10, float(vs.x) / 10)
    vol = open_volume(path)
    assert vol.voxel_size_nm == pytest.approx(expected, rel=1e-6)
    assert vol.voxel_size_nm == pytest.approx((3.5, 2.0, 1.0), rel=1e-6)
    assert vol.header["voxel_size_angstrom"] == pytest.approx([10.0, 20.0, 35.0])
    assert (vol.header["nx"], vol.header["ny"], vol.header["nz"]) == (8, 6, 4)
    assert "Å" in vol.voxel_size_origin


def test_missing_z_size_falls_back_to_x(tmp_path: Path) -> None:
    path = tmp_path / "v.mrc"
    write_mrc(path, random_data("int16", (3, 4, 5)), voxel_size=(8.0, 8.0, 0.0))
    assert open_volume(path).voxel_size_nm == pytest.approx((0.8, 0.8, 0.8))


def test_no_voxel_size_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "v.mrc"
    write_mrc(path, random_data("int16", (3, 4, 5)))  # mrcfile writes 0 Å
    vol = open_volume(path)
    assert vol.voxel_size_nm is None
    assert vol.voxel_size_origin == ""


def test_big_endian_mrc_reads_native_values(tmp_path: Path) -> None:
    a = random_data("int16", (3, 7, 6), seed=2)
    path = tmp_path / "be.mrc"
    write_mrc(path, a.astype(">i2"))
    assert mrcfile.read(path).dtype.byteorder == ">"
    vol = open_volume(path)
    assert vol.dtype == np.dtype("int16")
    got = vol.read((slice(0, 3), slice(0, 7), slice(0, 6)))
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, a)


def test_two_dimensional_mrc_is_one_plane(tmp_path: Path) -> None:
    a = random_data("float32", (7, 9))
    path = tmp_path / "img.mrc"
    write_mrc(path, a)
    vol = open_volume(path)
    assert vol.shape == (1, 7, 9)
    np.testing.assert_array_equal(vol.read((slice(0, 1), slice(2, 7), slice(0, 9)))[0], a[2:])


def test_header_claiming_more_data_raises(tmp_path: Path) -> None:
    path = tmp_path / "liar.mrc"
    write_mrc(path, random_data("float32", (4, 6, 8)))
    raw = bytearray(path.read_bytes())
    raw[8:12] = struct.pack("<i", 9)  # nz: 4 -> 9, with no more data behind it
    path.write_bytes(bytes(raw))
    with pytest.raises(ConversionError, match=r"liar\.mrc"):
        open_volume(path)


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.99])
def test_truncated_mrc_raises(tmp_path: Path, fraction: float) -> None:
    whole = tmp_path / "whole.mrc"
    write_mrc(whole, random_data("uint16", (4, 6, 8)))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ConversionError, match=r"cut\.mrc"):
        open_volume(cut)


def test_not_an_mrc_raises(tmp_path: Path) -> None:
    path = tmp_path / "fake.mrc"
    path.write_bytes(b"hello" * 400)
    with pytest.raises(ConversionError, match=r"fake\.mrc"):
        open_volume(path)
