"""A header voxel size that cannot be true (inf, NaN, 0) is no voxel size, in every format."""

from __future__ import annotations

import math
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from emingest.formats import open_volume


@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0])
def test_mrc_with_an_impossible_voxel_size_has_none(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "v.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((3, 8, 8), np.int16))
        mrc.voxel_size = (bad, 10.0, 10.0)  # x, y, z in Å
    vol = open_volume(path)
    try:
        assert vol.voxel_size_nm is None and vol.voxel_size_origin == ""
    finally:
        vol.close()


def test_mrc_voxel_size_in_angstrom_becomes_nm(tmp_path: Path) -> None:
    path = tmp_path / "v.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((3, 8, 8), np.int16))
        mrc.voxel_size = (8.0, 9.0, 50.0)
    vol = open_volume(path)
    try:
        assert vol.voxel_size_nm == pytest.approx((5.0, 0.9, 0.8))
        assert "MRC" in vol.voxel_size_origin
    finally:
        vol.close()
