"""Voxel sizes that cannot be true are refused where they enter: zero, negative, NaN, inf."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from emingest.cli import app
from emingest.config import load_settings
from emingest.errors import ConfigError
from emingest.pipeline import VolumeJob
from emingest.sources import create_source
from emingest.voxel_size import checked_voxel_size, plausible_voxel_size

BAD = [(-1.0, 1.0, 1.0), (0.0, 5.0, 5.0), (1.0, math.nan, 1.0), (1.0, 1.0, math.inf), (1.0, 2.0)]


@pytest.mark.parametrize("bad", BAD)
def test_volume_job_refuses_impossible_voxel_sizes(tmp_path: Path, bad: tuple) -> None:
    settings = load_settings(environ={}, overrides={"storage": {"data_root": str(tmp_path)}})
    local = create_source("local", settings)
    (ref,) = local.discover([str(tmp_path / "v.tif")])
    with pytest.raises(ConfigError, match="voxel size"):
        VolumeJob(local, ref, bad)  # type: ignore[arg-type]


def test_good_voxel_sizes_pass_as_floats() -> None:
    assert checked_voxel_size([50, 8, 8.5], "x") == (50.0, 8.0, 8.5)
    assert checked_voxel_size(None, "x") is None


@pytest.mark.parametrize("bad", BAD)
def test_a_header_with_an_impossible_size_counts_as_no_size(bad: tuple) -> None:
    assert plausible_voxel_size(bad) is None
    assert plausible_voxel_size((30.0, 4.0, 4.0)) == (30.0, 4.0, 4.0)


@pytest.mark.parametrize("values", [["-1", "1", "1"], ["0", "4", "4"], ["nan", "4", "4"]])
def test_cli_refuses_them_with_exit_two_and_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "v.tif", np.zeros((5, 8, 8), np.uint8))
    result = CliRunner().invoke(app, ["ingest", "local", "v.tif", "--voxel-size-nm", *values])
    assert result.exit_code == 2, result.output
    # one line (the log echoes the same line); no traceback, no dump
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert any(line.startswith("emingest: invalid voxel size") for line in lines), result.output
    assert all("invalid voxel size" in line for line in lines), result.output
    assert not list((tmp_path / "data").rglob("*.json"))
