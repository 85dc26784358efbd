"""Real EMDB maps (tests/data/README.md): our MRC reader against the bytes of the file, read
here with nothing but ``struct`` and numpy, so the check owes nothing to mrcfile."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from emingest.formats.mrc import MrcVolume

DATA = Path(__file__).resolve().parents[1] / "data"


def raw_map(path: Path) -> tuple[dict[str, tuple[float, ...]], np.ndarray]:
    """The MRC2014 header words we need, and the voxels as stored (sections, rows, columns)."""
    b = path.read_bytes()
    n = struct.unpack("<3i", b[0:12])
    mode = struct.unpack("<i", b[12:16])[0]
    assert mode == 2, "these maps are float32"
    header = {
        "n": n,
        "m": struct.unpack("<3i", b[28:40]),
        "cell": struct.unpack("<3f", b[40:52]),
        "axes": struct.unpack("<3i", b[64:76]),  # MAPC, MAPR, MAPS: 1 = x, 2 = y, 3 = z
    }
    nsymbt = struct.unpack("<i", b[92:96])[0]
    assert b[208:212] == b"MAP "
    data = np.frombuffer(b, "<f4", count=n[0] * n[1] * n[2], offset=1024 + nsymbt)
    return header, data.reshape(n[2], n[1], n[0])


def whole(shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(0, s) for s in shape)


def test_emd_3197_standard_axes() -> None:
    path = DATA / "EMD-3197.map"
    header, stored = raw_map(path)
    assert header["axes"] == (1, 2, 3)
    vol = MrcVolume(path)
    try:
        assert vol.shape == (20, 20, 20) and vol.dtype == np.float32
        # cell 228 Å over 20 samples: 11.4 Å = 1.14 nm on every axis
        assert vol.voxel_size_nm == pytest.approx((1.14, 1.14, 1.14))
        np.testing.assert_array_equal(vol.read(whole(vol.shape)), stored)
        region = (slice(3, 11), slice(5, 6), slice(0, 17))
        np.testing.assert_array_equal(vol.read(region), stored[region])
    finally:
        vol.close()


def test_emd_3001_symmetry_block_is_skipped() -> None:
    """A 160-byte symmetry block sits between header and data: voxels start after it."""
    path = DATA / "EMD-3001.map"
    _, stored = raw_map(path)
    vol = MrcVolume(path)
    try:
        # back in the stored order (sections, rows, columns): every voxel, none shifted
        np.testing.assert_array_equal(np.transpose(vol.read(whole(vol.shape)), (1, 2, 0)), stored)
    finally:
        vol.close()


def test_emd_3001_axis_order_becomes_zyx() -> None:
    """EMD-3001 stores columns along z, rows along x, sections along y. In z-y-x order the
    volume is 73 x 25 x 43 voxels of (33.03/72, 4.71/12, 17.93/40) Å."""
    path = DATA / "EMD-3001.map"
    header, stored = raw_map(path)
    assert header["axes"] == (3, 1, 2)
    vol = MrcVolume(path)
    try:
        assert vol.shape == (73, 25, 43)
        cell, m = header["cell"], header["m"]
        expected_nm = (cell[2] / m[2] / 10, cell[1] / m[1] / 10, cell[0] / m[0] / 10)
        assert vol.voxel_size_nm == pytest.approx(expected_nm)
        # stored axes (sections=y, rows=x, columns=z) -> (z, y, x)
        np.testing.assert_array_equal(vol.read(whole(vol.shape)), np.transpose(stored, (2, 0, 1)))
    finally:
        vol.close()
