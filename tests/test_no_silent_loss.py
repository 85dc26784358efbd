"""No pixel left behind: every TIFF series becomes a volume, or the volume fails clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from emingest.config import Settings, load_settings
from emingest.errors import ConversionError
from emingest.formats.tiff import TiffVolume
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult
from emingest.sources import create_source


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [8, 16, 16]},
            "logging": {"log_dir": str(tmp_path / "logs")},
        },
    )


def ingest(tmp_path: Path, *specs: Path) -> list[VolumeResult]:
    settings = settings_for(tmp_path)
    local = create_source("local", settings)
    refs = local.discover([str(s) for s in specs])
    with Pipeline(settings) as pipe:
        return pipe.run([VolumeJob(local, ref) for ref in refs])


def level0(tmp_path: Path, result: VolumeResult) -> np.ndarray:
    assert result.record is not None
    store = tmp_path / "data" / result.record.local_paths.volume
    return zarr.open_group(store, mode="r")["s0"][:]


def pages(n: int, shape: tuple[int, int], dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 200, size=(n, *shape)).astype(dtype)


def test_pages_of_different_shapes_become_one_volume_per_series(tmp_path: Path) -> None:
    big, small = pages(3, (40, 48), seed=1), pages(2, (20, 24), seed=2)
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        for plane in (big[0], small[0], big[1], big[2], small[1]):
            tif.write(plane, photometric="minisblack", metadata=None)
    results = ingest(tmp_path, path)
    assert [r.ref.name for r in results] == ["mixed", "mixed_series1"]
    assert [r.status for r in results] == ["complete", "complete"]
    got = {r.ref.name: level0(tmp_path, r) for r in results}
    # every one of the five pages is somewhere, bit for bit
    np.testing.assert_array_equal(got["mixed"], big)
    np.testing.assert_array_equal(got["mixed_series1"], small)


def test_series_written_one_after_another_are_all_ingested(tmp_path: Path) -> None:
    first, second = pages(4, (32, 32)), pages(2, (16, 40), "uint16", seed=3)
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(first, photometric="minisblack")
        tif.write(second, photometric="minisblack")
    results = ingest(tmp_path, path)
    assert [r.status for r in results] == ["complete", "complete"]
    assert results[0].record and results[0].record.volume_shape == [4, 32, 32]
    assert results[1].record and results[1].record.volume_shape == [2, 16, 40]
    assert results[1].record.dtype == "uint16"
    np.testing.assert_array_equal(level0(tmp_path, results[1]), second)
    assert results[1].record.additional_metadata["header"]["series"]["index"] == 1


def test_a_reader_that_would_read_one_series_of_several_refuses(tmp_path: Path) -> None:
    # what the archive sources (IDR, EPFL, EMPIAR) open: never the first series alone
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(pages(3, (16, 16)), photometric="minisblack")
        tif.write(pages(1, (8, 8)), photometric="minisblack")
    with pytest.raises(ConversionError, match="2 image series"):
        TiffVolume(path)
    vol = TiffVolume(path, 1)
    assert vol.shape == (1, 8, 8)
    vol.close()


def test_slice_folder_with_a_different_shape_fails_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, shape in enumerate([(20, 20), (20, 20), (20, 24)]):
        tifffile.imwrite(folder / f"s{i}.tif", pages(1, shape)[0], photometric="minisblack")
    (result,) = ingest(tmp_path, folder)
    assert result.status.startswith("error:") and "s2.tif" in result.status


def test_slice_folder_with_a_different_dtype_fails_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, dtype in enumerate(["uint8", "uint8", "uint16"]):
        tifffile.imwrite(folder / f"s{i}.tif", pages(1, (20, 20), dtype)[0])
    (result,) = ingest(tmp_path, folder)
    assert result.status.startswith("error:") and "s2.tif" in result.status


def test_slice_file_with_two_series_fails_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "slices"
    folder.mkdir()
    tifffile.imwrite(folder / "s0.tif", pages(1, (20, 20))[0])
    with tifffile.TiffWriter(folder / "s1.tif") as tif:
        tif.write(pages(1, (20, 20))[0], photometric="minisblack")
        tif.write(pages(1, (10, 10))[0], photometric="minisblack")
    (result,) = ingest(tmp_path, folder)
    assert result.status.startswith("error:") and "s1.tif" in result.status
    assert "2 image series" in result.status
