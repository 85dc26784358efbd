"""DM4 (and DM3) against a second, independent reader.

The replica's writer and the product's reader (rosettasciio) could share a misreading of
the Gatan format; ncempy's ``dmReader`` is a separate implementation (NCEM, LBNL), so each file
is read by both and must agree on pixels and calibration. ncempy's package ``__init__`` pulls
in its plotting and HDF5 modules; its DM reader needs only numpy, so it is loaded on its own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from emingest.formats.dm3 import DmVolume, read_dm_header
from emingest.formats.slices import open_slice
from emingest.testing.dm3 import write_dm3


def _ncempy_dm() -> ModuleType:
    path = importlib.metadata.distribution("ncempy").locate_file("ncempy/io/dm.py")
    spec = importlib.util.spec_from_file_location("ncempy_dm_reader", str(path))
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NCEM = _ncempy_dm()


def plane(shape: tuple[int, int], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 250, size=shape) - (100 if dtype.startswith("int") else 0)).astype(
        dtype
    )


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_our_reader_agrees_with_ncempy(tmp_path: Path, version: int, dtype: str) -> None:
    data = plane((45, 61), dtype, seed=version)
    path = write_dm3(tmp_path / f"slice.dm{version}", data, version=version, pixel_size_um=0.0125)
    theirs = NCEM.dmReader(str(path))
    assert theirs["data"].shape == data.shape
    np.testing.assert_array_equal(theirs["data"], data)  # the writer wrote what it meant
    ours = read_dm_header(path)
    assert ours.dm_version == version
    assert ours.shape == data.shape and ours.dtype.newbyteorder("=") == np.dtype(dtype)
    np.testing.assert_array_equal(ours.read((slice(0, 1), slice(0, 45), slice(0, 61)))[0], data)
    # calibration: ncempy gives (y, x) in the file's unit; ours is nm
    assert list(theirs["pixelUnit"]) == ["µm", "µm"]
    expected_nm = tuple(float(s) * 1000 for s in theirs["pixelSize"])
    assert ours.pixel_size_nm == pytest.approx(expected_nm)


def test_dm4_slice_and_volume(tmp_path: Path) -> None:
    """A DM4 slice as EMPIAR series have them: the slice reader and the volume reader."""
    data = plane((33, 47), "uint16", seed=9)
    path = write_dm3(tmp_path / "s_0000.dm4", data, version=4, slice_thickness_nm=40.0)
    info = open_slice(path)
    assert info.format == "dm4" and info.plane_shape == (33, 47)
    assert info.slice_thickness_nm == 40.0
    np.testing.assert_array_equal(info.read(slice(3, 20), slice(5, 40)), data[3:20, 5:40])
    vol = DmVolume(path)
    try:
        assert vol.shape == (1, 33, 47)
        np.testing.assert_array_equal(vol.read((slice(0, 1), slice(0, 33), slice(0, 47)))[0], data)
    finally:
        vol.close()
