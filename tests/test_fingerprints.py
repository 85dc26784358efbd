"""A changed input is ingested again (and says so); an unchanged one is skipped."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from typer.testing import CliRunner

from emingest.cli import app
from emingest.config import Settings, load_settings
from emingest.fingerprints import describe_change
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult
from emingest.records import read_record, resolve_in_root, write_record
from emingest.sources import create_source


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [8, 16, 16]},
            "logging": {"log_dir": str(tmp_path / "logs")},
        },
    )


def ingest(tmp_path: Path, spec: Path) -> VolumeResult:
    settings = settings_for(tmp_path)
    local = create_source("local", settings)
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(local, ref) for ref in local.discover([str(spec)])])
    return result


def stored(tmp_path: Path, result: VolumeResult) -> np.ndarray:
    assert result.record is not None
    store = resolve_in_root(result.record.local_paths.volume, tmp_path / "data")
    return zarr.open_group(store, mode="r")["s0"][:]


def volume(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 250, (5, 24, 24)).astype(np.uint8)


def rewrite(path: Path, data: np.ndarray) -> None:
    """Rewrite in place, same size, with a modification time surely different."""
    before = path.stat().st_mtime_ns
    tifffile.imwrite(path, data, photometric="minisblack")
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))


def test_a_changed_tiff_is_ingested_again_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, volume(1), photometric="minisblack")
    first = ingest(tmp_path, path)
    assert first.status == "complete"
    fp = read_record(first.record_path).source_fingerprint
    assert fp and fp["files"][0]["name"] == "v.tif"
    assert fp["files"][0]["size"] == path.stat().st_size
    assert ingest(tmp_path, path).status == "skipped"  # unchanged: skipped, as before

    rewrite(path, volume(2))
    with caplog.at_level(logging.WARNING):
        again = ingest(tmp_path, path)
    assert again.status == "complete" and "source changed" in again.note and "v.tif" in again.note
    assert "source changed since it was ingested" in caplog.text
    np.testing.assert_array_equal(stored(tmp_path, again), volume(2))  # no stale data
    record = read_record(again.record_path)
    assert record.source_fingerprint != fp
    assert ingest(tmp_path, path).status == "skipped"


def test_a_slice_added_to_a_folder_is_seen(tmp_path: Path) -> None:
    folder = tmp_path / "slices"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"s{i}.tif", volume(i)[0])
    assert ingest(tmp_path, folder).status == "complete"
    tifffile.imwrite(folder / "s3.tif", volume(3)[0])
    again = ingest(tmp_path, folder)
    assert again.status == "complete" and "added: s3.tif" in again.note
    assert again.record and again.record.volume_shape == [4, 24, 24]


def test_a_changed_zarr_array_is_seen(tmp_path: Path) -> None:
    store = tmp_path / "in.zarr"
    zarr.create_array(store, shape=(4, 16, 16), chunks=(4, 8, 8), dtype="uint8")[:] = 1
    assert ingest(tmp_path, store).status == "complete"
    zarr.create_array(store, shape=(4, 16, 20), chunks=(4, 8, 8), dtype="uint8", overwrite=True)[
        :
    ] = 2
    again = ingest(tmp_path, store)
    assert again.status == "complete" and "zarr.json" in again.note
    assert again.record and again.record.volume_shape == [4, 16, 20]


def test_a_record_without_fingerprint_is_skipped_as_before(tmp_path: Path) -> None:
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, volume(1), photometric="minisblack")
    first = ingest(tmp_path, path)
    assert first.record is not None
    first.record.source_fingerprint = None  # a record written before fingerprints
    write_record(first.record_path, first.record)
    rewrite(path, volume(2))
    assert ingest(tmp_path, path).status == "skipped"


def test_a_source_that_cannot_be_checked_keeps_the_complete_volume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, volume(1), photometric="minisblack")
    assert ingest(tmp_path, path).status == "complete"
    path.unlink()  # gone (or an archive offline): never turn a complete record into an error
    with caplog.at_level(logging.WARNING):
        result = ingest(tmp_path, path)
    assert result.status == "skipped" and "cannot check the source" in caplog.text
    assert read_record(result.record_path).is_complete


def test_the_command_line_says_why_it_ingested_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, volume(1), photometric="minisblack")
    assert CliRunner().invoke(app, ["ingest", "local", "v.tif"]).exit_code == 0
    rewrite(path, volume(2))
    result = CliRunner().invoke(app, ["ingest", "local", "v.tif"])
    assert result.exit_code == 0
    assert "complete" in result.output and "source changed since it was ingested" in result.output


def test_describe_change_names_what_differs() -> None:
    old = {"files": [{"name": "a", "size": 1}, {"name": "b", "size": 2}]}
    new = {"files": [{"name": "a", "size": 3}, {"name": "c", "size": 2}]}
    text = describe_change(old, new)
    assert "changed: a" in text and "added: c" in text and "removed: b" in text
    assert "etag" in describe_change({"url": "u", "etag": '"1"'}, {"url": "u", "etag": '"2"'})


def test_metadata_fingerprint_follows_the_documents_not_their_key_order() -> None:
    from emingest.fingerprints import metadata_fingerprint

    a = metadata_fingerprint("s3://b/x", {"zarray": {"shape": [1, 2], "dtype": "<i2"}})
    b = metadata_fingerprint("s3://b/x", {"zarray": {"dtype": "<i2", "shape": [1, 2]}})
    c = metadata_fingerprint("s3://b/x", {"zarray": {"dtype": "<i2", "shape": [1, 3]}})
    assert a == b and a != c
    assert "metadata_sha256" in describe_change(a, c)


def test_a_long_member_list_is_kept_as_a_digest(tmp_path: Path) -> None:
    from emingest.fingerprints import MAX_LISTED, local_files_fingerprint

    paths = []
    for i in range(MAX_LISTED + 1):
        p = tmp_path / f"s{i:05d}.tif"
        p.write_bytes(b"x")
        paths.append(p)
    before = local_files_fingerprint(paths)
    assert before["count"] == MAX_LISTED + 1 and "files" not in before
    os.utime(paths[500], ns=(1, 1))
    after = local_files_fingerprint(paths)
    assert after != before and "files_sha256" in describe_change(before, after)
