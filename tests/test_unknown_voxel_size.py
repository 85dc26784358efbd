"""A volume whose voxel size nobody states: null in the record, no unit in NGFF, a warning."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05 import Image

from emingest.config import load_settings
from emingest.omezarr.metadata import multiscales_attrs, plan_levels
from emingest.pipeline import Pipeline, VolumeJob
from emingest.records import read_record
from emingest.sources import create_source


def test_uncalibrated_tiff_gets_null_voxel_size_and_unitless_axes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "raw.tif"
    # 1 dot per inch: what writers put when they know nothing (the EPFL files)
    a = np.arange(6 * 40 * 40, dtype=np.uint16).reshape(6, 40, 40)
    tifffile.imwrite(path, a, resolution=(1, 1), resolutionunit="INCH", metadata=None)
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [4, 8, 8]},
            "logging": {"log_dir": str(tmp_path / "logs")},
        },
    )
    local = create_source("local", settings)
    with caplog.at_level(logging.WARNING), Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(local, ref) for ref in local.discover([str(path)])])
    assert result.status == "complete"
    record = read_record(result.record_path)
    assert record.voxel_size_nm is None and record.voxel_size_origin == ""
    assert record.scales and all(s.voxel_size_nm is None for s in record.scales)
    assert "no voxel size" in caplog.text
    store = next((tmp_path / "data").rglob("*.ome.zarr"))
    ome = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]
    axes = ome["multiscales"][0]["axes"]
    assert [ax["name"] for ax in axes] == ["z", "y", "x"]
    assert all("unit" not in ax for ax in axes)
    first = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]
    assert first == {"type": "scale", "scale": [1.0, 1.0, 1.0]}  # NGFF requires a scale
    Image.from_zarr(zarr.open_group(store, mode="r"))  # still valid OME-NGFF 0.5


def test_multiscales_attrs_keeps_nanometres_when_known() -> None:
    levels = plan_levels((8, 8, 8), (4, 4, 4), (30.0, 4.0, 4.0))
    axes = multiscales_attrs("v", levels)["multiscales"][0]["axes"]
    assert {ax["unit"] for ax in axes} == {"nanometer"}
    axes = multiscales_attrs("v", levels, unit=None)["multiscales"][0]["axes"]
    assert all("unit" not in ax for ax in axes)


def test_an_archive_voxel_size_that_cannot_be_true_is_recorded_as_null(tmp_path: Path) -> None:
    from emingest.readers import VolumeReader
    from emingest.sources.base import Source, VolumeInfo, VolumeRef

    class ZeroVoxelSource(Source):
        """An archive that answers 0 nm (seen in the wild for 'not set')."""

        name = "zero"

        def discover(self, spec: list[str], **options: object) -> list[VolumeRef]:
            return [VolumeRef("zero", "z1", "v", "")]

        def describe(self, ref: VolumeRef) -> VolumeInfo:
            return VolumeInfo(
                ref, (2, 8, 8), np.dtype("uint8"), (0.0, 4.0, 4.0), voxel_size_origin="api"
            )

        def open(self, ref: VolumeRef) -> object:
            class Reader(VolumeReader):
                shape = (2, 8, 8)
                dtype = np.dtype("uint8")

                def read(self, region: tuple[slice, ...]) -> np.ndarray:
                    return np.zeros(tuple(s.stop - s.start for s in region), np.uint8)

                def close(self) -> None:
                    pass

            return Reader()

    settings = load_settings(
        environ={}, overrides={"storage": {"data_root": str(tmp_path / "data")}}
    )
    source = ZeroVoxelSource()
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(source, source.discover([])[0])])  # type: ignore[arg-type]
    assert result.status == "complete", result.status
    record = read_record(result.record_path)
    assert record.voxel_size_nm is None and record.voxel_size_origin == ""
