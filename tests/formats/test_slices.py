"""One slice of a series (DM3 or TIFF): what it says of itself, and its pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from emingest.errors import UnsupportedFormatError
from emingest.formats.dm3 import DmVolume
from emingest.formats.mrc import MrcVolume
from emingest.formats.slices import open_slice, open_volume_file
from emingest.formats.tiff import TiffVolume
from emingest.testing.dm3 import DEFAULT_PIXEL_SIZE_UM, write_dm3


def plane(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_dm3_slice_main_image_calibration_and_thickness(tmp_path: Path) -> None:
    data = plane((40, 56))
    path = write_dm3(tmp_path / "s_0000.dm3", data, thumbnail=True, slice_thickness_nm=50.0)
    s = open_slice(path)
    assert s.format == "dm3" and s.plane_shape == (40, 56) and s.dtype == np.uint8
    assert s.pixel_size_nm == pytest.approx((DEFAULT_PIXEL_SIZE_UM * 1000,) * 2)
    assert s.slice_thickness_nm == pytest.approx(50.0)
    np.testing.assert_array_equal(s.read(slice(3, 20), slice(5, 50)), data[3:20, 5:50])


def test_tiff_slice(tmp_path: Path) -> None:
    data = plane((16, 24), seed=1)
    tifffile.imwrite(tmp_path / "s_0001.tif", data)
    s = open_slice(tmp_path / "s_0001.tif")
    assert (s.format, s.plane_shape, s.slice_thickness_nm) == ("tiff", (16, 24), None)
    np.testing.assert_array_equal(s.read(slice(0, 16), slice(2, 9)), data[:, 2:9])


def test_a_multipage_tiff_is_not_a_slice(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(UnsupportedFormatError, match="5-page TIFF in a slice series"):
        open_slice(tmp_path / "stack.tif")


def test_open_volume_file_picks_the_reader_by_suffix(tmp_path: Path) -> None:
    import mrcfile

    mrcfile.write(tmp_path / "t.mrc", np.zeros((2, 4, 4), np.int16))
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((5, 8, 8), np.uint8))
    write_dm3(tmp_path / "t.dm3", plane((4, 4)))
    assert isinstance(open_volume_file(tmp_path / "t.mrc", None), MrcVolume)
    assert isinstance(open_volume_file(tmp_path / "t.tif", None), TiffVolume)
    assert isinstance(open_volume_file(tmp_path / "t.dm3", 30.0), DmVolume)
