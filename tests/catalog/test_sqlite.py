"""The SQLite catalog: upsert, filters, sync from sidecars, rebuild after loss or corruption."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from emingest.catalog import (
    CatalogFilters,
    catalog_db_path,
    index_record,
    iter_sidecars,
    open_catalog,
)
from emingest.config import Settings
from emingest.errors import CatalogError
from emingest.records import error_status
from emingest.testing.catalog import write_sample_record


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_sample_record(root, "empiar", "11759", "stack", description="Mouse cortex FIB-SEM")
    write_sample_record(
        root, "empiar", "11759", "other", dtype="uint16", voxel_size_nm=[30.0, 2.0, 2.0]
    )
    write_sample_record(
        root, "idr", "9846137", "img", status="saving-data", volume_shape=None, dtype=None
    )
    write_sample_record(root, "epfl", "ca1", "volumedata", volume_shape=[165, 768, 1024])
    write_sample_record(
        root, "epfl", "ca1", "training", status=error_status("boom"), volume_shape=None
    )
    # a labels image lives inside its image's store; its sidecar sits beside the image's own
    store = root / "epfl" / "ca1" / "volumedata.ome.zarr"
    (store / "labels" / "gt").mkdir(parents=True)
    (store / "zarr.json").write_text('{"zarr_format": 3}')
    (store / "labels" / "gt" / "zarr.json").write_text('{"zarr_format": 3}')
    write_sample_record(root, "epfl", "ca1", "gt", description="ground truth labels")
    # noise the catalog must ignore: hidden temp file, malformed sidecar
    (root / "epfl" / "ca1" / ".gt.json.abc.tmp").write_text("{")
    (root / "epfl" / "ca1" / ".hidden.json").write_text("{")
    (root / "idr" / "9846137" / "broken.json").write_text("{not json")
    return root


def dump(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM records ORDER BY id").fetchall()


def ids(rows: list[Any]) -> list[str]:
    return [r.id for r in rows]


def test_sidecars_skip_zarr_metadata_and_hidden_files(data_root: Path) -> None:
    names = sorted(p.relative_to(data_root).as_posix() for p in iter_sidecars(data_root))
    assert names == [
        "empiar/11759/other.json",
        "empiar/11759/stack.json",
        "epfl/ca1/gt.json",
        "epfl/ca1/training.json",
        "epfl/ca1/volumedata.json",
        "idr/9846137/broken.json",
        "idr/9846137/img.json",
    ]


def test_open_builds_index_and_sync_reports_skipped(data_root: Path, tmp_path: Path) -> None:
    with open_catalog(tmp_path / "cat.sqlite", data_root=data_root) as cat:
        assert len(cat.query()) == 6
        result = cat.sync(data_root)
    assert result.indexed == 6
    [(path, reason)] = result.skipped
    assert path.endswith("broken.json") and "unreadable" in reason


def test_filters(data_root: Path, tmp_path: Path) -> None:
    with open_catalog(tmp_path / "cat.sqlite", data_root=data_root) as cat:
        q = lambda **kw: ids(cat.query(CatalogFilters(**kw)))  # noqa: E731
        assert q(source="empiar") == ["empiar/11759/other", "empiar/11759/stack"]
        assert q(status="in-progress") == q(status="saving-data") == ["idr/9846137/img"]
        assert q(status="error") == ["epfl/ca1/training"]
        assert len(q(status="complete")) == 4
        assert q(dtype="uint16") == ["empiar/11759/other"]
        # voxel bounds apply to every axis
        assert "empiar/11759/other" not in q(voxel_max_nm=10)
        assert q(voxel_min_nm=2, voxel_max_nm=2.5) == []
        assert len(q(voxel_min_nm=2, voxel_max_nm=30)) == 6
        assert "empiar/11759/other" not in q(voxel_min_nm=4)
        assert len(q(voxel_min_nm=4)) == 5
        assert q(min_shape=(100, 1, 1)) == ["epfl/ca1/volumedata"]
        assert "epfl/ca1/volumedata" not in q(max_shape=(100, 1000, 1000))
        assert q(text="fib-sem") == ["empiar/11759/stack"]
        assert q(text="labels", source="epfl") == ["epfl/ca1/gt"]


def test_unknown_status_filter_is_an_error() -> None:
    with pytest.raises(CatalogError, match="in-progress"):
        CatalogFilters(status="done")


def test_upsert_get_remove(tmp_path: Path) -> None:
    root = tmp_path / "data"
    rec = write_sample_record(root, "local", "v-1", "v", status="saving-data", volume_shape=None)
    with open_catalog(tmp_path / "cat.sqlite") as cat:
        assert cat.get("local/v-1/v") is None
        cat.upsert(rec, root / "local" / "v-1" / "v.json")
        assert cat.get("local/v-1/v").status == "saving-data"
        rec.status, rec.volume_shape, rec.nbytes = "complete", [1, 2, 3], 6
        cat.upsert(rec, root / "local" / "v-1" / "v.json")
        row = cat.get("local/v-1/v")
        assert (row.status, row.shape, row.nbytes) == ("complete", (1, 2, 3), 6)
        assert row.record == rec.model_dump(mode="json")
        assert row.record_path == str((root / "local" / "v-1" / "v.json").resolve())
        assert cat.remove("local/v-1/v") is True
        assert cat.remove("local/v-1/v") is False
        assert cat.query() == []


def test_deleted_database_is_rebuilt_identically_by_sync(data_root: Path, tmp_path: Path) -> None:
    db = tmp_path / "cat.sqlite"
    with open_catalog(db) as cat:  # no data root: starts empty, filled by sync only
        assert cat.query() == []
        cat.sync(data_root)
        before_rows = cat.query()
    before = dump(db)
    assert len(before) == 6
    for p in db.parent.glob("cat.sqlite*"):
        p.unlink()
    with open_catalog(db) as cat:
        assert cat.query() == []
        cat.sync(data_root)
        assert cat.query() == before_rows
    assert dump(db) == before


def test_sync_drops_records_whose_sidecar_is_gone(data_root: Path, tmp_path: Path) -> None:
    with open_catalog(tmp_path / "cat.sqlite", data_root=data_root) as cat:
        (data_root / "empiar" / "11759" / "other.json").unlink()
        assert cat.get("empiar/11759/other") is not None
        cat.sync(data_root)
        assert cat.get("empiar/11759/other") is None


def test_corrupt_database_is_rebuilt_from_sidecars(
    data_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "cat.sqlite"
    with open_catalog(db, data_root=data_root) as cat:
        expected = cat.query()
    db.write_bytes(b"this is not a database" * 200)
    with caplog.at_level(logging.WARNING), open_catalog(db, data_root=data_root) as cat:
        assert cat.query() == expected
    assert "corrupt" in caplog.text
    assert not list(tmp_path.glob(".cat.sqlite.*.tmp"))


def test_db_path_defaults_under_data_root(tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"data_root": str(tmp_path / "d")}})
    assert catalog_db_path(settings) == tmp_path / "d" / "catalog.sqlite"


def test_index_record_updates_catalog_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    settings = Settings.model_validate({"storage": {"data_root": str(root)}})
    rec = write_sample_record(root, "local", "v-1", "v")
    assert index_record(settings, root / "local" / "v-1" / "v.json", rec) is True
    assert index_record(settings, root / "local" / "v-1" / "v.json") is True  # reads the file
    with open_catalog(settings) as cat:
        assert ids(cat.query()) == ["local/v-1/v"]
    # an unusable database is logged, not raised
    (root / "catalog.sqlite").unlink()
    for p in root.glob("catalog.sqlite-*"):
        p.unlink()
    (root / "catalog.sqlite").mkdir()
    with caplog.at_level(logging.WARNING):
        assert index_record(settings, root / "local" / "v-1" / "v.json", rec) is False
    assert "catalog sync" in caplog.text
    assert index_record(settings, root / "missing.json") is False


def test_catalog_written_while_ingesting_equals_a_sync_rebuild(tmp_path: Path) -> None:
    """The pipeline indexes each record as it writes it (``index_record``); ``sync`` rebuilds
    from the sidecars. Deleting the database and syncing must give back the very same rows,
    failed volume included."""
    import numpy as np
    import tifffile

    from emingest.config import load_settings
    from emingest.pipeline import Pipeline, VolumeJob
    from emingest.sources import create_source

    rng = np.random.default_rng(1)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for n, shape in enumerate([(8, 24, 24), (12, 16, 40)]):
        tifffile.imwrite(inputs / f"v{n}.tif", rng.integers(0, 255, shape, dtype=np.uint8))
    (inputs / "broken.tif").write_text("not a tiff")
    root = tmp_path / "data"
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root), "chunk_shape": [8, 8, 8]},
            "logging": {"log_dir": str(tmp_path / "logs")},
        },
    )
    local = create_source("local", settings)
    refs = local.discover([str(p) for p in sorted(inputs.iterdir())])
    with Pipeline(settings) as pipe:
        results = pipe.run([VolumeJob(local, ref) for ref in refs])
    assert sorted(r.status.split(":")[0] for r in results) == ["complete", "complete", "error"]
    db = catalog_db_path(settings)
    ingested = dump(db)
    assert len(ingested) == 3  # the baseline comes from ingesting, not from a sync
    for p in db.parent.glob("catalog.sqlite*"):
        p.unlink()
    with open_catalog(db) as cat:
        assert cat.query() == []
        cat.sync(root)
    assert dump(db) == ingested
