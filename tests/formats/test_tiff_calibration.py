"""Voxel sizes from every standard place in a TIFF, and where each came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from emingest.formats.tiff import TiffVolume

STACK = np.arange(5 * 16 * 20, dtype=np.uint8).reshape(5, 16, 20)


def calibration(path: Path) -> tuple[tuple[float, float, float] | None, str, dict]:
    vol = TiffVolume(path)
    try:
        return vol.voxel_size_nm, vol.voxel_size_origin, vol.header
    finally:
        vol.close()


@pytest.mark.parametrize(
    ("unit", "per_unit_nm"),
    [("CENTIMETER", 1e7), ("INCH", 25.4e6), ("MILLIMETER", 1e6), ("MICROMETER", 1e3)],
)
def test_baseline_resolution_tags_with_a_length_unit(
    tmp_path: Path, unit: str, per_unit_nm: float
) -> None:
    # 8 nm in x, 10 nm in y; a plain (non-ImageJ) stack, as libtiff-based writers make them
    path = tmp_path / "res.tif"
    resolution = (per_unit_nm / 8.0, per_unit_nm / 10.0)
    tifffile.imwrite(path, STACK, resolution=resolution, resolutionunit=unit, metadata=None)
    voxel, origin, header = calibration(path)
    assert voxel == pytest.approx((8.0, 10.0, 8.0), rel=1e-6)
    assert unit in origin and "X/YResolution" in origin and "z assumed equal to x" in origin
    assert header["resolution_unit"] == unit


@pytest.mark.parametrize(
    ("resolution", "unit"),
    [((1, 1), "INCH"), ((72, 72), "INCH"), ((300, 300), "INCH"), ((125000, 125000), "NONE")],
)
def test_resolution_without_a_length_or_a_print_default_is_no_calibration(
    tmp_path: Path, resolution: tuple[float, float], unit: str
) -> None:
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, STACK, resolution=resolution, resolutionunit=unit, metadata=None)
    voxel, origin, _ = calibration(path)
    assert voxel is None and origin == ""


FEI_HELIOS = """[User]
Date=11/30/2026
Time=09:12:01 PM
[Beam]
HV=2000
[Scan]
InternalScan=1
PixelWidth=4.96094e-009
PixelHeight=5.12e-009
HorFieldsize=1.524e-005
[EScan]
PixelWidth=9.9e-009
PixelHeight=9.9e-009
"""


@pytest.mark.parametrize("code", [34682, 34680])  # FEI_HELIOS, FEI_SFEG
def test_fei_thermo_pixel_width_in_metres(tmp_path: Path, code: int) -> None:
    path = tmp_path / "fei.tif"
    tifffile.imwrite(
        path,
        STACK[:1],
        resolution=(72, 72),
        resolutionunit="INCH",
        extratags=[(code, "s", 0, FEI_HELIOS, True)],
        metadata=None,
    )
    voxel, origin, header = calibration(path)
    assert voxel == pytest.approx((4.96094, 5.12, 4.96094), rel=1e-6)
    assert "FEI" in origin and "[Scan]" in origin
    assert header["fei_metadata"]["Beam"]["HV"] == 2000  # the vendor block is kept whole


CZ_SEM = """0
0
AP_PIXEL_SIZE
Pixel Size = 3.5 nm
AP_IMAGE_PIXEL_SIZE
Image Pixel Size = {size}
DP_DETECTOR_CHANNEL
Signal A = InLens
"""


@pytest.mark.parametrize(("size", "nm"), [("2.233 nm", 2.233), ("0.0125 µm", 12.5)])
def test_zeiss_sem_image_pixel_size_with_units(tmp_path: Path, size: str, nm: float) -> None:
    path = tmp_path / "zeiss.tif"
    text = CZ_SEM.format(size=size).encode("latin-1")
    tifffile.imwrite(
        path,
        STACK[:1],
        # Zeiss writes the micro sign as one Latin-1 byte, so the tag is written as bytes
        extratags=[(34118, "B", len(text), text, True)],
        metadata=None,
    )
    voxel, origin, header = calibration(path)
    assert voxel == pytest.approx((nm, nm, nm), rel=1e-6)
    assert "ap_image_pixel_size" in origin
    assert "sem_metadata" in header


def test_zeiss_falls_back_to_ap_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "zeiss.tif"
    text = "AP_PIXEL_SIZE\nPixel Size = 3.5 nm\n"
    tifffile.imwrite(path, STACK[:1], extratags=[(34118, "s", 0, text, True)], metadata=None)
    voxel, origin, _ = calibration(path)
    assert voxel == pytest.approx((3.5, 3.5, 3.5)) and "ap_pixel_size" in origin


def test_imagej_without_spacing_says_z_was_assumed(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        STACK,
        imagej=True,
        resolution=(1 / 0.008, 1 / 0.008),
        metadata={"axes": "ZYX", "unit": "um"},
    )
    voxel, origin, _ = calibration(path)
    assert voxel == pytest.approx((8.0, 8.0, 8.0))
    assert "ImageJ" in origin and "z assumed equal to x" in origin


def test_imagej_spacing_wins_over_the_resolution_tags(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        STACK,
        imagej=True,
        resolution=(1 / 0.008, 1 / 0.008),
        metadata={"axes": "ZYX", "unit": "um", "spacing": 0.05},
    )
    voxel, origin, _ = calibration(path)
    assert voxel == pytest.approx((50.0, 8.0, 8.0))
    assert "z from spacing" in origin


def test_an_impossible_header_size_is_no_size(tmp_path: Path) -> None:
    path = tmp_path / "fei.tif"
    text = "[Scan]\nPixelWidth=0\nPixelHeight=0\n"
    tifffile.imwrite(path, STACK[:1], extratags=[(34682, "s", 0, text, True)], metadata=None)
    voxel, origin, _ = calibration(path)
    assert voxel is None and origin == ""
