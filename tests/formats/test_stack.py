"""A folder or glob of 2-D images, stacked in natural order."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile

from emingest.errors import ConversionError, EntryNotFoundError, UnsupportedFormatError
from emingest.formats import open_volume
from emingest.formats.stack import ImageStackVolume, stack_members

NAMES = ["slice_1.tif", "slice_2.tif", "slice_10.tif", "slice_11.tif", "slice_3.tif"]
NATURAL = ["slice_1.tif", "slice_2.tif", "slice_3.tif", "slice_10.tif", "slice_11.tif"]


def write_slices(folder: Path, names: list[str], shape=(9, 13), dtype="uint16") -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    planes = {}
    for name in names:
        plane = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
        tifffile.imwrite(folder / name, plane)
        planes[name] = plane
    return planes


def full(vol) -> tuple[slice, slice, slice]:
    return tuple(slice(0, n) for n in vol.shape)  # type: ignore[return-value]


def test_folder_stacks_in_natural_order(tmp_path: Path) -> None:
    planes = write_slices(tmp_path / "stack", NAMES)
    (tmp_path / "stack" / "README.txt").write_text("not a slice", encoding="utf-8")
    vol = open_volume(tmp_path / "stack")
    assert isinstance(vol, ImageStackVolume)
    assert [p.name for p in vol.members] == NATURAL
    assert vol.shape == (5, 9, 13)
    assert vol.dtype == np.dtype("uint16")
    expected = np.stack([planes[n] for n in NATURAL])
    np.testing.assert_array_equal(vol.read(full(vol)), expected)
    rng = np.random.default_rng(0)
    for _ in range(20):
        region = []
        for s in vol.shape:
            a = int(rng.integers(0, s))
            region.append(slice(a, int(rng.integers(a + 1, s + 1))))
        np.testing.assert_array_equal(vol.read(tuple(region)), expected[tuple(region)])
    assert vol.header["members"] == NATURAL


def test_glob_selects_and_orders(tmp_path: Path) -> None:
    planes = write_slices(tmp_path, NAMES)
    write_slices(tmp_path / "other", ["slice_5.tif"])  # not matched by the pattern
    tifffile.imwrite(tmp_path / "extra_1.tif", np.zeros((9, 13), np.uint16))
    pattern = str(tmp_path / "slice_*.tif")
    assert [p.name for p in stack_members(pattern)] == NATURAL
    vol = open_volume(pattern)
    assert vol.shape == (5, 9, 13)
    np.testing.assert_array_equal(vol.read(full(vol)), np.stack([planes[n] for n in NATURAL]))


def test_glob_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError):
        open_volume(str(tmp_path / "nothing_*.tif"))


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedFormatError, match="empty"):
        open_volume(tmp_path / "empty")


def test_slice_with_a_different_shape_names_the_file(tmp_path: Path) -> None:
    write_slices(tmp_path / "s", ["slice_1.tif", "slice_2.tif"])
    write_slices(tmp_path / "s", ["slice_3.tif"], shape=(9, 14))
    vol = open_volume(tmp_path / "s")
    assert vol.read((slice(0, 2), slice(0, 9), slice(0, 13))).shape == (2, 9, 13)
    with pytest.raises(ConversionError, match=r"slice_3\.tif"):
        vol.read(full(vol))


def test_slice_with_a_different_dtype_names_the_file(tmp_path: Path) -> None:
    write_slices(tmp_path / "s", ["a1.tif", "a2.tif"])
    write_slices(tmp_path / "s", ["a3.tif"], dtype="uint8")
    vol = open_volume(tmp_path / "s")
    with pytest.raises(ConversionError, match=r"a3\.tif"):
        vol.read((slice(2, 3), slice(0, 9), slice(0, 13)))


def test_undecodable_slice_names_the_file(tmp_path: Path) -> None:
    write_slices(tmp_path / "s", ["a1.tif"])
    (tmp_path / "s" / "a2.tif").write_bytes(b"II*\x00garbage")
    vol = open_volume(tmp_path / "s")
    with pytest.raises(ConversionError, match=r"a2\.tif"):
        vol.read(full(vol))


def test_png_slices(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    planes = [rng.integers(0, 255, (6, 7), dtype=np.uint8) for _ in range(3)]
    for i, plane in enumerate(planes, start=1):
        (tmp_path / f"z{i}.png").write_bytes(imagecodecs.png_encode(plane))
    vol = open_volume(tmp_path)
    assert vol.shape == (3, 6, 7)
    np.testing.assert_array_equal(vol.read(full(vol)), np.stack(planes))


def test_slices_carry_their_pixel_size(tmp_path: Path) -> None:
    folder = tmp_path / "ij"
    folder.mkdir()
    for i in range(1, 4):
        tifffile.imwrite(
            folder / f"s{i}.tif",
            np.full((5, 6), i, np.uint8),
            imagej=True,
            resolution=(1 / 0.004, 1 / 0.004),
            metadata={"unit": "um"},
        )
    vol = open_volume(folder)
    assert vol.voxel_size_nm is not None
    assert vol.voxel_size_nm[1:] == pytest.approx((4.0, 4.0), rel=1e-6)
    np.testing.assert_array_equal(vol.read(full(vol))[:, 0, 0], [1, 2, 3])
