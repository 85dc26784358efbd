"""DM3 reading (rosettasciio's parser, our region reads) against files our DM3 writer makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rsciio.digitalmicrograph  # noqa: F401  (a broken install fails here, never skips)

from emingest.errors import ConversionError
from emingest.formats.dm3 import DmVolume, json_safe, read_dm_header
from emingest.testing.dm3 import DEFAULT_PIXEL_SIZE_UM, encode_dm3, write_dm3

PIXEL_NM = float(np.float32(DEFAULT_PIXEL_SIZE_UM)) * 1000


def plane(shape: tuple[int, int], dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 250, size=shape).astype(dtype)


def test_main_image_not_thumbnail_with_sbfsem_thickness(tmp_path: Path) -> None:
    data = plane((37, 53))
    path = write_dm3(tmp_path / "slice_0000.dm3", data, thumbnail=True)
    image = read_dm_header(path)
    assert image.shape == (37, 53)  # not the 192 x 192 thumbnail
    assert image.dtype == np.dtype("<u1")
    assert image.pixel_size_nm == pytest.approx((PIXEL_NM, PIXEL_NM))
    assert image.slice_thickness_nm == 50.0
    assert "SBFSEM" in image.slice_thickness_origin
    assert image.tags["SBFSEM"]["Record"]["Slice thickness"] == 50.0
    np.testing.assert_array_equal(image.read((slice(0, 1), slice(0, 37), slice(0, 53)))[0], data)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_region_reads_match(tmp_path: Path, dtype: str) -> None:
    data = plane((40, 31), dtype, seed=3)
    vol = DmVolume(write_dm3(tmp_path / "a.dm3", data))
    assert vol.shape == (1, 40, 31) and vol.dtype == np.dtype(dtype)
    assert vol.voxel_size_nm == pytest.approx((50.0, PIXEL_NM, PIXEL_NM))
    out = vol.read((slice(0, 1), slice(5, 17), slice(3, 30)))
    assert out.flags.c_contiguous and out.dtype.isnative
    np.testing.assert_array_equal(out[0], data[5:17, 3:30])


def test_z_spacing_falls_back_to_the_setting(tmp_path: Path) -> None:
    path = write_dm3(tmp_path / "a.dm3", plane((8, 8)), slice_thickness_nm=None)
    assert read_dm_header(path).slice_thickness_nm is None
    assert DmVolume(path, z_spacing_nm=30.0).voxel_size_nm == pytest.approx(
        (30.0, PIXEL_NM, PIXEL_NM)
    )


def test_no_thumbnail_is_fine(tmp_path: Path) -> None:
    data = plane((20, 24))
    image = read_dm_header(write_dm3(tmp_path / "a.dm3", data, thumbnail=False))
    assert image.shape == (20, 24)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 3],  # truncated inside the tag tree
        lambda raw: raw[:20] + b"\xff" * (len(raw) - 20),  # garbage tags
        lambda raw: b"\x00\x00\x00\x07" + raw[4:],  # version 7
    ],
    ids=["truncated", "garbage", "version"],
)
def test_corrupt_files_raise_naming_the_file(tmp_path: Path, damage) -> None:
    raw = encode_dm3(plane((30, 30)))
    path = tmp_path / "bad_0003.dm3"
    path.write_bytes(damage(raw))
    with pytest.raises(ConversionError, match=r"bad_0003\.dm3"):
        DmVolume(path)


def test_pixels_cut_short_are_detected(tmp_path: Path) -> None:
    raw = encode_dm3(plane((64, 64)), thumbnail=False)
    image = read_dm_header(write_dm3(tmp_path / "ok.dm3", plane((64, 64)), thumbnail=False))
    path = tmp_path / "short.dm3"
    path.write_bytes(raw[: image.offset + 100])  # tags intact, pixels cut
    with pytest.raises(ConversionError, match=r"short\.dm3"):
        read_dm_header(path)


def test_json_safe() -> None:
    assert json_safe({"a": (1, np.float32(2.5)), 3: b"\x01", "n": float("nan")}) == {
        "a": [1, 2.5],
        "3": "01",
        "n": None,
    }
