"""The synthetic EM generator: deterministic, region-consistent, EM-like, memory-bounded."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

import emingest.testing.synthetic as synthetic
from emingest.testing.synthetic import (
    CLASS_BACKGROUND,
    CLASS_MEMBRANE,
    CLASS_ORGANELLE,
    SyntheticEM,
    synthetic_em,
    write_tiff_stack,
)

SHAPE = (37, 150, 211)  # odd sizes: nothing lines up with the internal 4- and 8-voxel grids


@pytest.fixture(scope="module", params=["uint8", "int16", "uint16"])
def volume(request: pytest.FixtureRequest) -> tuple[SyntheticEM, np.ndarray, np.ndarray]:
    em = SyntheticEM(SHAPE, request.param, seed=7)
    img, cls = em.read_with_classes((slice(None), slice(None), slice(None)))
    return em, img, cls


def test_same_seed_same_volume_other_seed_other_volume() -> None:
    a = SyntheticEM((16, 64, 64), seed=3).array()
    b = SyntheticEM((16, 64, 64), seed=3).array()
    c = SyntheticEM((16, 64, 64), seed=4).array()
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.5


def test_array_is_native_contiguous_and_of_the_dtype(volume: tuple) -> None:
    em, img, cls = volume
    full = em.array()
    assert full.shape == img.shape == cls.shape == SHAPE
    assert full.dtype == em.dtype and full.dtype.isnative
    assert full.flags.c_contiguous and cls.dtype == np.uint8
    np.testing.assert_array_equal(full, img)


def test_value_ranges_look_like_their_archives(volume: tuple) -> None:
    em, img, _ = volume
    lo, hi = int(img.min()), int(img.max())
    assert len(np.unique(img)) > 100  # not a few flat levels
    if em.dtype == np.uint8:
        assert lo > 10 and hi < 250 and 100 < img.mean() < 200
    elif em.dtype == np.int16:  # OpenOrganelle-like: signed, centred near 0, a few thousand
        assert lo < -1000 and 1000 < hi < 5000 and abs(img.mean()) < 2000
    else:
        assert lo > 255 and hi < 10000


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_region_equals_the_slice_of_the_whole(data: st.DataObject) -> None:
    em = SyntheticEM(SHAPE, "uint8", seed=11)
    whole, classes = _whole(11)
    bounds = [sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2))) for n in SHAPE]
    region = (slice(*bounds[0]), slice(*bounds[1]), slice(*bounds[2]))
    np.testing.assert_array_equal(em.read(region), whole[region])
    np.testing.assert_array_equal(em.classes(region), classes[region])


_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _whole(seed: int) -> tuple[np.ndarray, np.ndarray]:
    if seed not in _CACHE:
        _CACHE[seed] = synthetic_em(SHAPE, "uint8", seed)
    return _CACHE[seed]


@pytest.mark.parametrize(
    "region",
    [
        (slice(5, 6), slice(7, 8), slice(9, 10)),  # one voxel
        (slice(36, 37), slice(149, 150), slice(210, 211)),  # the last voxel
        (slice(0, 37), slice(3, 4), slice(0, 211)),  # an xz plane
        (slice(-5, None), slice(None, 9), slice(100, 10_000)),  # negative and overlong bounds
        (slice(8, 8), slice(0, 10), slice(0, 10)),  # empty
    ],
)
def test_edge_regions(volume: tuple, region: tuple[slice, slice, slice]) -> None:
    em, img, cls = volume
    out = em.read(region)
    np.testing.assert_array_equal(out, img[region])
    np.testing.assert_array_equal(em.classes(region), cls[region])
    assert out.flags.c_contiguous


def test_result_does_not_depend_on_internal_tiling(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (24, 120, 136)
    reference = SyntheticEM(shape, seed=5).array()
    monkeypatch.setattr(synthetic, "_TILE_ELEMS", 1 << 9)
    monkeypatch.setattr(synthetic, "_SLAB_SUPERBLOCKS", 7)
    np.testing.assert_array_equal(SyntheticEM(shape, seed=5).array(), reference)


def test_class_map_has_three_classes_in_sensible_fractions() -> None:
    img, cls = synthetic_em((64, 192, 192), "uint8", seed=2)
    fraction = np.bincount(cls.ravel(), minlength=3) / cls.size
    assert set(np.unique(cls)) == {CLASS_BACKGROUND, CLASS_MEMBRANE, CLASS_ORGANELLE}
    assert fraction[CLASS_BACKGROUND] > 0.6
    assert 0.04 < fraction[CLASS_MEMBRANE] < 0.3
    assert 0.01 < fraction[CLASS_ORGANELLE] < 0.2
    # dark membranes, darker-than-cytoplasm organelles
    means = [img[cls == c].mean() for c in range(3)]
    assert means[CLASS_MEMBRANE] < means[CLASS_ORGANELLE] < means[CLASS_BACKGROUND] - 20


def test_noise_grows_with_the_signal() -> None:
    em = SyntheticEM((32, 128, 128), "uint16", seed=9)
    img, cls = em.read_with_classes((slice(None), slice(None), slice(None)))
    # the residual of a 2x2 difference is mostly noise; compare bright and dark classes
    d = np.diff(img.astype(np.float64), axis=2)
    inside = cls[:, :, 1:] == cls[:, :, :-1]
    bright = d[inside & (cls[:, :, 1:] == CLASS_BACKGROUND)].std()
    dark = d[inside & (cls[:, :, 1:] == CLASS_ORGANELLE)].std()
    assert bright > dark > 0


def test_lossless_zstd_compresses_like_real_em() -> None:
    img = SyntheticEM((64, 256, 256), "uint8", seed=0).array()
    ratio = img.nbytes / len(numcodecs.Zstd(level=3).encode(img))
    assert 1.1 < ratio < 1.45


def test_rejects_what_it_cannot_make() -> None:
    with pytest.raises(ValueError, match="dtype"):
        SyntheticEM((4, 4, 4), "float32")
    with pytest.raises(ValueError, match="shape"):
        SyntheticEM((4, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step"):
        SyntheticEM((4, 4, 4)).read((slice(0, 4, 2), slice(None), slice(None)))


def test_writing_a_stack_is_memory_bounded(tmp_path: Path) -> None:
    peaks = []
    for depth in (48, 192):
        em = SyntheticEM((depth, 256, 256), "uint8", seed=1)
        tracemalloc.start()
        try:
            write_tiff_stack(tmp_path / f"{depth}.tif", em, slab=8)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    # four times the volume, about the same peak: memory follows the slab, not the volume
    assert peaks[1] < 1.5 * peaks[0]


def test_plain_stack_with_8_kib_strips_and_no_calibration(tmp_path: Path) -> None:
    em = SyntheticEM((10, 70, 512), "uint8", seed=4)
    path = write_tiff_stack(tmp_path / "plain.tif", em, rowsperstrip=16)
    with tifffile.TiffFile(path) as tif:
        assert not tif.is_bigtiff and tif.byteorder == "<" and len(tif.pages) == 10
        page = tif.pages.first
        assert page.compression == 1 and page.rowsperstrip == 16
        assert max(page.databytecounts) == 8192
        assert page.tags["XResolution"].value == (1, 1)
        assert page.tags["ResolutionUnit"].value == 2  # inch
        assert "ImageDescription" not in page.tags
        np.testing.assert_array_equal(tif.asarray(), em.array())
    assert not (tmp_path / "plain.tif.part").exists()


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_big_endian_imagej_hyperstack(tmp_path: Path, dtype: str) -> None:
    em = SyntheticEM((12, 40, 56), dtype, seed=6)
    path = write_tiff_stack(
        tmp_path / "ij.tif", em, byteorder=">", imagej=True, voxel_size_um=0.02, slab=5
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.byteorder == ">" and tif.is_imagej and not tif.is_bigtiff
        meta = tif.imagej_metadata
        assert meta is not None
        assert meta["spacing"] == pytest.approx(0.02)
        assert meta["unit"].encode().decode("unicode_escape") == "µm"  # ImageJ's \u00B5m
        assert meta["slices"] == 12
        page = tif.pages.first
        assert page.tags["XResolution"].value == (50, 1)
        assert page.tags["ResolutionUnit"].value == 1
        assert page.rowsperstrip == 40  # one strip per page, as the IDR original
        np.testing.assert_array_equal(tif.asarray(), em.array())


def test_imagej_refuses_signed_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="signed"):
        write_tiff_stack(tmp_path / "x.tif", SyntheticEM((2, 8, 8), "int16"), imagej=True)
