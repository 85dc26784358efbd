"""Files we write ourselves (zarr.json, records, reports) get the process umask, like chunks."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emingest.atomic import atomic_write_text
from emingest.catalog.report import build_report, write_report
from emingest.config import load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources import create_source


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "a" / "zarr.json"
    atomic_write_text(target, "{}")
    assert mode(target) == 0o644
    old = os.umask(0o077)
    try:
        atomic_write_text(target, "{}")
    finally:
        os.umask(old)
    assert mode(target) == 0o600
    assert target.read_text() == "{}"


def test_metadata_records_and_reports_are_readable_by_others(
    tmp_path: Path, umask_022: None
) -> None:
    tif = tmp_path / "v.tif"
    tifffile.imwrite(tif, np.arange(5 * 20 * 20, dtype=np.uint8).reshape(5, 20, 20))
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [8, 8, 8]},
            "logging": {"log_dir": str(tmp_path / "logs")},
        },
    )
    local = create_source("local", settings)
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(local, ref) for ref in local.discover([str(tif)])])
    assert result.status == "complete"
    assert mode(result.record_path) == 0o644
    metadata = list((tmp_path / "data").rglob("zarr.json"))
    assert len(metadata) >= 2
    assert {mode(p) for p in metadata} == {0o644}
    json_path, log_path = write_report(build_report(tmp_path / "data"), tmp_path / "data")
    assert mode(Path(json_path)) == 0o644
    assert mode(Path(log_path)) == 0o644
    catalog = tmp_path / "data" / "catalog.sqlite"
    assert mode(catalog) == 0o644
