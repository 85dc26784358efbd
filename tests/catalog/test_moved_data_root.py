"""Records name their files relative to the data root: a moved data root stays valid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from typer.testing import CliRunner

from emingest.cli import app
from emingest.records import read_record, resolve_in_root

runner = CliRunner()


def test_a_moved_data_root_still_syncs_reports_and_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    a = np.arange(5 * 24 * 24, dtype=np.uint8).reshape(5, 24, 24)
    tifffile.imwrite(tmp_path / "v.tif", a, photometric="minisblack")
    result = runner.invoke(
        app, ["ingest", "local", "v.tif", "--data-root", "data", "--chunk", "8", "8", "8"]
    )
    assert result.exit_code == 0, result.output
    (sidecar,) = (tmp_path / "data" / "local").glob("v-*/v.json")
    record = read_record(sidecar)
    folder = sidecar.parent.name
    assert record.local_paths.volume == f"local/{folder}/v.ome.zarr"
    assert record.local_paths.metadata == f"local/{folder}/v.json"

    moved = tmp_path / "elsewhere" / "archive"
    moved.parent.mkdir()
    shutil.move(tmp_path / "data", moved)

    result = runner.invoke(app, ["catalog", "sync", "--data-root", str(moved)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["catalog", "show", f"local/{folder}/v", "--data-root", str(moved)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    volume = resolve_in_root(shown["local_paths"]["volume"], moved)
    np.testing.assert_array_equal(zarr.open_group(volume, mode="r")["s0"][:], a)

    result = runner.invoke(app, ["catalog", "report", "--data-root", str(moved)])
    assert result.exit_code == 0, result.output
    (report_path,) = moved.glob("metadata_catalog_*.json")
    report = json.loads(report_path.read_text())
    assert report["status_by_source"]["local"]["complete"] == 1
    assert report["missing_volumes_by_source"] == {"local": []}


def test_the_report_flags_a_complete_record_whose_volume_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "v.tif", np.zeros((5, 8, 8), np.uint8), photometric="minisblack")
    assert runner.invoke(app, ["ingest", "local", "v.tif", "--data-root", "data"]).exit_code == 0
    (store,) = (tmp_path / "data" / "local").glob("v-*/v.ome.zarr")
    shutil.rmtree(store)
    result = runner.invoke(app, ["catalog", "report", "--data-root", "data"])
    assert result.exit_code == 0, result.output
    (report_path,) = (tmp_path / "data").glob("metadata_catalog_*.json")
    (missing,) = json.loads(report_path.read_text())["missing_volumes_by_source"]["local"]
    assert Path(missing["volume"]).name == "v.ome.zarr"
