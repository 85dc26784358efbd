"""TIFF, ImageJ TIFF (both byte orders) and OME-TIFF: exact region reads, voxel sizes, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emingest.errors import ConversionError, EntryNotFoundError, UnsupportedFormatError
from emingest.formats import open_volume
from emingest.formats.tiff import TiffVolume
from emingest.sources.base import Region

SHAPE = (6, 20, 30)


def random_regions(shape: tuple[int, int, int], n: int, seed: int) -> Iterator[Region]:
    rng = np.random.default_rng(seed)
    yield tuple(slice(0, s) for s in shape)  # type: ignore[misc]
    yield (slice(0, 0), slice(0, shape[1]), slice(0, shape[2]))
    for _ in range(n):
        region = []
        for s in shape:
            a, b = sorted(int(v) for v in rng.integers(0, s + 1, size=2))
            region.append(slice(a, max(b, a + 1) if a < s else s))
        yield tuple(region)  # type: ignore[misc]


def random_data(dtype: str, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(10, 3, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def assert_reads_like_tifffile(path: Path, seed: int = 0) -> TiffVolume:
    expected = tifffile.imread(path)
    expected = expected.reshape((-1, *expected.shape[-2:]))
    vol = open_volume(path)
    assert isinstance(vol, TiffVolume)
    assert vol.shape == expected.shape
    assert vol.dtype == expected.dtype.newbyteorder("=")
    for region in random_regions(vol.shape, 25, seed):
        got = vol.read(region)
        assert got.dtype == vol.dtype and got.dtype.isnative
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected[region])
    return vol


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_plain_multipage_tiff(tmp_path: Path, dtype: str, byteorder: str) -> None:
    a = random_data(dtype)
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, a, byteorder=byteorder, photometric="minisblack")
    vol = assert_reads_like_tifffile(path)
    np.testing.assert_array_equal(vol.read((slice(0, 6), slice(0, 20), slice(0, 30))), a)
    assert vol.voxel_size_nm is None
    assert vol.header["byteorder"] == byteorder
    vol.close()


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_imagej_tiff_voxel_size_and_values(tmp_path: Path, byteorder: str) -> None:
    a = random_data("uint16")
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        a,
        imagej=True,
        byteorder=byteorder,
        resolution=(50, 50),  # pixels per µm: 20 nm
        metadata={"spacing": 0.02, "unit": "\\u00B5m", "axes": "ZYX"},
    )
    vol = assert_reads_like_tifffile(path)
    assert vol.voxel_size_nm == pytest.approx((20.0, 20.0, 20.0), rel=1e-9)
    assert vol.voxel_size_origin
    full = vol.read((slice(0, 6), slice(0, 20), slice(0, 30)))
    assert full.dtype == np.dtype("uint16")  # native order, values unchanged
    np.testing.assert_array_equal(full, a)
    assert vol.header["byteorder"] == byteorder
    vol.close()


@pytest.mark.parametrize(
    ("unit", "per_unit"), [("um", 1e-3), ("micron", 1e-3), ("nm", 1.0), ("\\u00B5m", 1e-3)]
)
def test_imagej_anisotropic_voxel_size(tmp_path: Path, unit: str, per_unit: float) -> None:
    a = random_data("uint8", (4, 8, 9))
    path = tmp_path / "ij.tif"
    x_nm, y_nm, z_nm = 4.0, 5.0, 30.0
    tifffile.imwrite(
        path,
        a,
        imagej=True,
        resolution=(1 / (x_nm * per_unit), 1 / (y_nm * per_unit)),  # pixels per unit
        metadata={"spacing": z_nm * per_unit, "unit": unit, "axes": "ZYX"},
    )
    vol = assert_reads_like_tifffile(path)
    assert vol.voxel_size_nm == pytest.approx((z_nm, y_nm, x_nm), rel=1e-6)


def test_imagej_tiff_without_length_unit_has_no_voxel_size(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, random_data("uint8", (3, 5, 7)), imagej=True, metadata={"axes": "ZYX"})
    vol = assert_reads_like_tifffile(path)
    assert vol.voxel_size_nm is None
    assert vol.voxel_size_origin == ""


@pytest.mark.parametrize(
    ("sizes", "units", "expected"),
    [
        ((4.0, 5.0, 30.0), ("nm", "nm", "nm"), (30.0, 5.0, 4.0)),
        ((0.004, 0.005, 0.03), ("µm", "µm", "µm"), (30.0, 5.0, 4.0)),
        ((40.0, 50.0, 3.0), ("Å", "Å", "nm"), (3.0, 5.0, 4.0)),
        ((0.004, 0.005, 0.03), (None, None, None), (30.0, 5.0, 4.0)),  # OME default: µm
    ],
)
def test_ome_tiff_physical_sizes(
    tmp_path: Path, sizes: tuple, units: tuple, expected: tuple
) -> None:
    a = random_data("uint16", (5, 8, 9))
    metadata: dict = {"axes": "ZYX"}
    for axis, size, unit in zip("XYZ", sizes, units, strict=True):
        metadata[f"PhysicalSize{axis}"] = size
        if unit is not None:
            metadata[f"PhysicalSize{axis}Unit"] = unit
    path = tmp_path / "v.ome.tif"
    tifffile.imwrite(path, a, ome=True, metadata=metadata)
    vol = assert_reads_like_tifffile(path)
    assert vol.voxel_size_nm == pytest.approx(expected, rel=1e-9)
    assert "PhysicalSizeX" in vol.header["ome_pixels"]
    np.testing.assert_array_equal(vol.read((slice(0, 5), slice(0, 8), slice(0, 9))), a)


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_compressed_tiff_read_by_pages(tmp_path: Path, compression: str, byteorder: str) -> None:
    a = random_data("uint16")
    path = tmp_path / "c.tif"
    tifffile.imwrite(
        path, a, compression=compression, byteorder=byteorder, photometric="minisblack"
    )
    vol = assert_reads_like_tifffile(path, seed=1)
    assert vol._mm is None  # the page path, not the memory map
    np.testing.assert_array_equal(vol.read((slice(0, 6), slice(0, 20), slice(0, 30))), a)


def test_tiled_tiff(tmp_path: Path) -> None:
    a = random_data("uint8", (3, 40, 48))
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, a, tile=(16, 16), photometric="minisblack")
    assert_reads_like_tifffile(path, seed=2)


def test_single_page_tiff_is_one_plane(tmp_path: Path) -> None:
    a = random_data("uint16", (20, 30))
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, a)
    vol = open_volume(path)
    assert vol.shape == (1, 20, 30)
    np.testing.assert_array_equal(vol.read((slice(0, 1), slice(0, 20), slice(0, 30)))[0], a)


def test_region_outside_shape_rejected(tmp_path: Path) -> None:
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, random_data("uint8"), photometric="minisblack")
    vol = open_volume(path)
    with pytest.raises(ValueError, match="outside"):
        vol.read((slice(0, 7), slice(0, 20), slice(0, 30)))


def _write(path: Path, layout: str, a: np.ndarray) -> None:
    if layout == "plain":
        tifffile.imwrite(path, a, photometric="minisblack")
    elif layout == "zlib":
        tifffile.imwrite(path, a, photometric="minisblack", compression="zlib")
    elif layout == "imagej":
        tifffile.imwrite(path, a, imagej=True, metadata={"axes": "ZYX"})
    else:
        tifffile.imwrite(path, a, ome=True, metadata={"axes": "ZYX"})


@pytest.mark.parametrize(
    ("layout", "fraction"),
    [
        ("plain", 0.05),
        ("plain", 0.5),
        ("zlib", 0.05),
        ("zlib", 0.97),
        ("zlib", 0.5),
        ("imagej", 0.05),
        ("imagej", 0.5),
        ("ome", 0.5),
    ],
)
def test_truncated_tiff_raises_conversion_error(
    tmp_path: Path, layout: str, fraction: float
) -> None:
    a = random_data("uint16")
    whole = tmp_path / "whole.tif"
    _write(whole, layout, a)
    data = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ConversionError, match=r"cut\.tif"):
        vol = open_volume(cut)
        vol.read(tuple(slice(0, n) for n in vol.shape))  # type: ignore[arg-type]


def _cut_points(path: Path) -> list[int]:
    """Byte counts to keep: spread over the file, and inside every IFD (entry count, tags)."""
    size = path.stat().st_size
    points = {int(size * f) for f in np.linspace(0.02, 0.999, 48)}
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            points.update(page.offset + k for k in (1, 2, 7, 30, 100))
    return sorted(p for p in points if 0 < p < size)


@pytest.mark.parametrize(
    "layout",
    [
        "plain",
        "zlib",
        "imagej",
        "ome",
    ],
)
def test_truncated_tiff_never_reads_silently_short(tmp_path: Path, layout: str) -> None:
    """Cut anywhere: either a ConversionError naming the file, or the full, correct volume."""
    a = random_data("uint16")
    whole = tmp_path / "whole.tif"
    _write(whole, layout, a)
    data = whole.read_bytes()
    for keep in _cut_points(whole):
        cut = tmp_path / f"cut{keep}.tif"
        cut.write_bytes(data[:keep])
        try:
            vol = open_volume(cut)
            got = vol.read(tuple(slice(0, n) for n in vol.shape))  # type: ignore[arg-type]
            vol.close()
        except ConversionError as err:
            assert cut.name in str(err), keep
        else:
            assert got.shape == a.shape, keep
            np.testing.assert_array_equal(got, a)


def test_not_an_image_raises_unsupported_format(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n" * 100, encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"notes\.txt"):
        open_volume(text)
    fake = tmp_path / "fake.tif"
    fake.write_bytes(b"GIF89a" + bytes(200))
    with pytest.raises(UnsupportedFormatError, match=r"fake\.tif"):
        open_volume(fake)


def test_tiff_magic_with_garbage_raises_unsupported_format(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\xff" * 64)
    with pytest.raises(UnsupportedFormatError, match=r"bad\.tif"):
        open_volume(bad)


def test_multichannel_tiff_rejected_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, random_data("uint8", (4, 8, 9, 3)), photometric="rgb")
    with pytest.raises(UnsupportedFormatError, match="single-channel") as info:
        open_volume(path)
    assert isinstance(info.value, ConversionError)


def test_multichannel_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, random_data("uint8", (4, 8, 9, 3)), photometric="rgb")
    with pytest.raises(UnsupportedFormatError, match=r"rgb\.tif"):
        open_volume(path)


def test_missing_file_raises_entry_not_found(tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError, match=r"absent\.tif"):
        open_volume(tmp_path / "absent.tif")
