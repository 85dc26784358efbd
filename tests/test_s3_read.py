"""Reading an ``s3://`` data root back (issue 15): the SDK, the catalog commands and the
report, against moto's S3 server, on a volume the real pipeline wrote there."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import emingest
from emingest.catalog.report import build_report
from emingest.cli import app
from emingest.patches import PatchSampler
from emingest.records import VolumeRecord
from emingest.testing.s3_root import S3Ingested

runner = CliRunner()


def _env(data: S3Ingested, work: Path) -> dict[str, str]:
    """A user's environment: the data root, its endpoint and a fresh local work folder."""
    return {
        "EMINGEST_STORAGE__DATA_ROOT": data.root.url,
        "EMINGEST_STORAGE__S3_ENDPOINT_URL": data.root.endpoint_url,
        "EMINGEST_STORAGE__WORK_DIR": str(work),
        "EMINGEST_LOGGING__LOG_DIR": str(work / "logs"),
    }


def test_the_pipeline_indexed_the_record_by_its_url(s3_ingested: S3Ingested) -> None:
    [row] = emingest.catalog(settings=s3_ingested.settings)
    assert row.id == s3_ingested.id and row.status == "complete"
    assert row.record_path == s3_ingested.record_url
    assert row.record_path.startswith(s3_ingested.root.url + "/")


def test_open_reads_the_same_arrays(s3_ingested: S3Ingested) -> None:
    vol = emingest.open(s3_ingested.id, settings=s3_ingested.settings)
    assert vol.store.url == f"{s3_ingested.root.url}/{s3_ingested.store_key}"
    assert vol.shape == s3_ingested.array.shape
    np.testing.assert_array_equal(vol.read(), s3_ingested.array)
    np.testing.assert_array_equal(vol.read((3, slice(10, 50), None)), s3_ingested.array[3:4, 10:50])
    assert vol.read(level=1).shape == vol.levels[1].shape
    np.testing.assert_array_equal(vol.to_dask(0)[2:5].compute(), s3_ingested.array[2:5])
    again = pickle.loads(pickle.dumps(vol))  # a DataLoader worker reopens the store
    np.testing.assert_array_equal(again.read((slice(0, 8),)), s3_ingested.array[:8])
    sampler = PatchSampler(
        [s3_ingested.id], patch_shape=(4, 16, 16), n_samples=3, settings=vol.settings
    )
    patch = sampler[0]
    z, y, x = patch.corner
    np.testing.assert_array_equal(patch.raw, s3_ingested.array[z : z + 4, y : y + 16, x : x + 16])


def test_a_fresh_machine_rebuilds_the_catalog_from_the_bucket(
    s3_ingested: S3Ingested, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only the standard AWS variables and a data root: no catalog file yet on this machine
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_ingested.root.endpoint_url)
    monkeypatch.setenv("EMINGEST_STORAGE__WORK_DIR", str(tmp_path / "work"))
    rows = emingest.catalog(data_root=s3_ingested.root.url, status="complete")
    assert [r.id for r in rows] == [s3_ingested.id]
    assert rows[0].record_path == s3_ingested.record_url
    assert (tmp_path / "work" / "catalog.sqlite").is_file()
    vol = emingest.open(s3_ingested.id, data_root=s3_ingested.root.url)
    np.testing.assert_array_equal(vol.read((slice(4, 9),)), s3_ingested.array[4:9])


def test_catalog_sync_list_and_show_with_an_s3_data_root(
    s3_ingested: S3Ingested, tmp_path: Path
) -> None:
    env = _env(s3_ingested, tmp_path / "work")
    result = runner.invoke(app, ["catalog", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert [r["record_path"] for r in json.loads(result.stdout)] == [s3_ingested.record_url]

    result = runner.invoke(app, ["catalog", "sync", "--data-root", s3_ingested.root.url], env=env)
    assert result.exit_code == 0, result.output
    assert f"indexed 1 records from {s3_ingested.root.url}" in result.stdout

    result = runner.invoke(app, ["catalog", "show", s3_ingested.id], env=env)
    assert result.exit_code == 0, result.output
    assert "indexed copy" not in result.output
    key = s3_ingested.record_url.removeprefix(s3_ingested.root.url + "/")
    assert json.loads(result.stdout) == json.loads(s3_ingested.object(key))


def test_catalog_sync_of_an_unreachable_bucket_is_one_clear_error(
    s3_ingested: S3Ingested, tmp_path: Path
) -> None:
    env = _env(s3_ingested, tmp_path / "work")
    result = runner.invoke(
        app, ["catalog", "sync", "--data-root", "s3://no-such-bucket/x"], env=env
    )
    assert result.exit_code == 1
    assert "no-such-bucket" in result.output and "Traceback" not in result.output


def test_report_of_an_s3_data_root_is_written_beside_the_records(
    s3_ingested: S3Ingested, tmp_path: Path
) -> None:
    report = build_report(s3_ingested.settings.storage.root())
    assert report["data_root"] == s3_ingested.root.url
    assert report["status_by_source"]["local"]["complete"] == 1
    assert report["missing_volumes_by_source"] == {"local": []}
    assert report["unreadable"] == []

    env = _env(s3_ingested, tmp_path / "work")
    result = runner.invoke(app, ["catalog", "report"], env=env)
    assert result.exit_code == 0, result.output
    every = s3_ingested.root.object_keys()
    written = [k for k in every if k.rsplit("/", 1)[-1].startswith("metadata_catalog_")]
    assert sorted(k.rsplit(".", 1)[-1] for k in written) == ["json", "log"]
    assert all(k.count("/") == s3_ingested.root.prefix.count("/") + 1 for k in written)
    assert f"wrote {s3_ingested.root.url}/" in result.stdout
    on_s3 = json.loads(s3_ingested.root.get(next(k for k in written if k.endswith(".json"))))
    assert on_s3["validation_by_source"]["local"]["valid"] == 1
    # the report's objects are not records: the catalog still holds one
    assert len(emingest.catalog(settings=s3_ingested.settings)) == 1

    result = runner.invoke(app, ["catalog", "report", "--out", str(tmp_path / "out")], env=env)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("metadata_catalog_*.json"))) == 1


def test_a_missing_store_is_flagged_in_the_report(s3_ingested: S3Ingested) -> None:
    root = s3_ingested.settings.storage.root()
    record = VolumeRecord.model_validate_json(
        s3_ingested.object(s3_ingested.record_url.removeprefix(s3_ingested.root.url + "/"))
    )
    ghost = record.model_copy(
        update={
            "name": "ghost",
            "local_paths": record.local_paths.model_copy(
                update={"volume": "local/elsewhere/ghost.ome.zarr"}
            ),
        }
    )
    where = root.location(f"{record.source}/{record.source_id}/ghost.json")
    where.write_text(ghost.model_dump_json())
    try:
        report = build_report(root)
        [missing] = report["missing_volumes_by_source"]["local"]
        assert missing == {
            "path": where.url,
            "volume": f"{s3_ingested.root.url}/local/elsewhere/ghost.ome.zarr",
        }
    finally:
        where.unlink()
