"""The contract every catalog backend passes, as a base test class (like zarr's ``StoreTests``).

A backend's tests subclass :class:`CatalogTests` and provide two things: the fixture
``catalog_location`` (what :func:`emingest.catalog.open_catalog` takes: a SQLite path, a
``postgresql://`` URL) and :meth:`CatalogTests.wipe`, which loses the index the way a user
could (delete the file, drop the table). Every backend then answers the same queries with the
same rows, rebuilds itself from the sidecars, and keeps every record when several processes
write at once.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from emingest.catalog import Catalog, CatalogFilters, open_catalog, read_sidecars
from emingest.errors import CatalogError
from emingest.records import LocalPaths, VolumeRecord, error_status, write_record

SAMPLE_IDS = [
    "empiar/11759/other",
    "empiar/11759/stack",
    "epfl/ca1/gt",
    "epfl/ca1/training",
    "epfl/ca1/volumedata",
    "idr/9846137/img",
]
"""The ids :func:`write_sample_tree` indexes (its broken sidecar is skipped)."""


def write_sample_record(
    root: Path, source: str, source_id: str, name: str, **fields: Any
) -> VolumeRecord:
    """Write a complete-looking record sidecar under ``root`` and return the record."""
    folder = root / source / source_id
    values: dict[str, Any] = {
        "status": "complete",
        "timestamp": "2025-01-01T00:00:00Z",
        "voxel_size_nm": [8.0, 4.0, 4.0],
        "volume_shape": [10, 200, 300],
        "dtype": "uint8",
        **fields,
    }
    record = VolumeRecord(
        source=source,
        source_id=source_id,
        name=name,
        local_paths=LocalPaths(
            volume=str(folder / f"{name}.ome.zarr"), metadata=str(folder / f"{name}.json")
        ),
        **values,
    )
    write_record(folder / f"{name}.json", record)
    return record


def write_sample_tree(root: Path) -> Path:
    """A data root with six records of every status, a labels image, and noise to skip."""
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
    store = root / "epfl" / "ca1" / "volumedata.ome.zarr"
    (store / "labels" / "gt").mkdir(parents=True)
    (store / "zarr.json").write_text('{"zarr_format": 3}')
    (store / "labels" / "gt" / "zarr.json").write_text('{"zarr_format": 3}')
    write_sample_record(root, "epfl", "ca1", "gt", description="ground truth labels")
    (root / "epfl" / "ca1" / ".gt.json.abc.tmp").write_text("{")
    (root / "idr" / "9846137" / "broken.json").write_text("{not json")
    return root


def write_and_index_volumes(location: str, root: str, writer: int, count: int) -> None:
    """One writer process: for each of its volumes, a stub then a complete record, each written
    to its sidecar first and indexed second, through a catalog opened per record (as the
    pipeline's ``index_record`` does)."""
    for i in range(count):
        name = f"v{i:03d}"
        for status in ("saving-data", "complete"):
            shape = [1, 2, i + 1] if status == "complete" else None
            record = write_sample_record(
                Path(root), "concurrent", f"w{writer}", name, status=status, volume_shape=shape
            )
            with open_catalog(location) as cat:
                cat.upsert(record, Path(root) / "concurrent" / f"w{writer}" / f"{name}.json")


def sync_repeatedly(location: str, root: str, times: int) -> None:
    """A process that rebuilds the index from the sidecars while the writers write."""
    with open_catalog(location) as cat:
        for _ in range(times):
            cat.sync(root)


def _ids(rows: list[Any]) -> list[str]:
    return [r.id for r in rows]


class CatalogTests:
    """Subclass, provide the ``catalog_location`` fixture and :meth:`wipe`."""

    writers = 4
    volumes_per_writer = 12

    @pytest.fixture
    def catalog_location(self) -> str | Path:
        raise NotImplementedError("a backend's test class provides catalog_location")

    def wipe(self, location: str | Path) -> None:
        """Lose the whole index, as a user could."""
        raise NotImplementedError

    def open(self, location: str | Path, data_root: Path | None = None) -> Catalog:
        return open_catalog(location, data_root=data_root)

    @pytest.fixture
    def data_root(self, tmp_path: Path) -> Path:
        return write_sample_tree(tmp_path / "data")

    # -- opening and sync -------------------------------------------------------------------

    def test_open_with_data_root_builds_the_index(
        self, catalog_location: str | Path, data_root: Path
    ) -> None:
        with self.open(catalog_location, data_root) as cat:
            assert _ids(cat.query()) == SAMPLE_IDS
            result = cat.sync(data_root)
        assert result.indexed == 6
        [(path, reason)] = result.skipped
        assert path.endswith("broken.json") and "unreadable" in reason

    def test_rows_equal_the_sidecars(self, catalog_location: str | Path, data_root: Path) -> None:
        """Every column and the full record come back as they were read from the sidecars."""
        expected, _ = read_sidecars(data_root)
        with self.open(catalog_location) as cat:
            cat.sync(data_root)
            assert cat.query() == expected
            assert cat.get("epfl/ca1/volumedata") == expected[4]
        with self.open(catalog_location) as cat:  # and they persist
            assert cat.query() == expected

    def test_wiped_index_is_rebuilt_identically_by_sync(
        self, catalog_location: str | Path, data_root: Path
    ) -> None:
        with self.open(catalog_location) as cat:
            assert cat.query() == []
            cat.sync(data_root)
            before = cat.query()
        assert len(before) == 6
        self.wipe(catalog_location)
        with self.open(catalog_location) as cat:
            assert cat.query() == []
            cat.sync(data_root)
            assert cat.query() == before

    def test_sync_drops_records_whose_sidecar_is_gone(
        self, catalog_location: str | Path, data_root: Path
    ) -> None:
        with self.open(catalog_location, data_root) as cat:
            (data_root / "empiar" / "11759" / "other.json").unlink()
            assert cat.get("empiar/11759/other") is not None
            cat.sync(data_root)
            assert cat.get("empiar/11759/other") is None
            assert len(cat.query()) == 5

    # -- queries ----------------------------------------------------------------------------

    def test_filters(self, catalog_location: str | Path, data_root: Path) -> None:
        with self.open(catalog_location, data_root) as cat:

            def q(**kw: Any) -> list[str]:
                return _ids(cat.query(CatalogFilters(**kw)))

            assert q(source="empiar") == ["empiar/11759/other", "empiar/11759/stack"]
            assert q(status="in-progress") == q(status="saving-data") == ["idr/9846137/img"]
            assert q(status="error") == ["epfl/ca1/training"]
            assert len(q(status="complete")) == 4
            assert q(dtype="uint16") == ["empiar/11759/other"]
            assert "empiar/11759/other" not in q(voxel_max_nm=10)
            assert q(voxel_min_nm=2, voxel_max_nm=2.5) == []
            assert len(q(voxel_min_nm=2, voxel_max_nm=30)) == 6
            assert "empiar/11759/other" not in q(voxel_min_nm=4)
            assert len(q(voxel_min_nm=4)) == 5
            assert q(min_shape=(100, 1, 1)) == ["epfl/ca1/volumedata"]
            assert "epfl/ca1/volumedata" not in q(max_shape=(100, 1000, 1000))
            assert q(text="fib-sem") == ["empiar/11759/stack"]
            assert q(text="LABELS", source="epfl") == ["epfl/ca1/gt"]
            assert q(text="100%_") == []  # LIKE wildcards are text, not patterns
            assert q(source="empiar", dtype="uint8", status="complete") == ["empiar/11759/stack"]

    def test_ids_are_ordered_bytewise(self, catalog_location: str | Path, tmp_path: Path) -> None:
        """Ids sort as Python sorts them, whatever the database's collation."""
        root = tmp_path / "data"
        for source_id in ("a-b", "a_b", "aB", "ab", "A", "a.b"):
            write_sample_record(root, "local", source_id, "v")
        with self.open(catalog_location) as cat:
            cat.sync(root)
            got = _ids(cat.query())
        assert got == sorted(got) and len(got) == 6

    # -- writes -----------------------------------------------------------------------------

    def test_upsert_get_remove(self, catalog_location: str | Path, tmp_path: Path) -> None:
        root = tmp_path / "data"
        rec = write_sample_record(
            root, "local", "v-1", "v", status="saving-data", volume_shape=None
        )
        path = root / "local" / "v-1" / "v.json"
        with self.open(catalog_location) as cat:
            assert cat.get("local/v-1/v") is None
            cat.upsert(rec, path)
            first = cat.get("local/v-1/v")
            assert first is not None and first.status == "saving-data" and first.shape is None
            rec.status, rec.volume_shape, rec.nbytes = "complete", [1, 2, 3], 6
            cat.upsert(rec, path)
            row = cat.get("local/v-1/v")
            assert row is not None
            assert (row.status, row.shape, row.nbytes) == ("complete", (1, 2, 3), 6)
            assert row.record == rec.model_dump(mode="json")
            assert row.record_path == str(path.resolve())
            assert len(cat.query()) == 1
            assert cat.remove("local/v-1/v") is True
            assert cat.remove("local/v-1/v") is False
            assert cat.query() == []

    def test_closed_catalog_raises_catalog_error(self, catalog_location: str | Path) -> None:
        cat = self.open(catalog_location)
        cat.close()
        with pytest.raises(CatalogError, match="closed"):
            cat.query()

    def test_concurrent_writers_never_lose_or_duplicate(
        self, catalog_location: str | Path, tmp_path: Path
    ) -> None:
        """Writer processes index stubs then complete records while another process syncs:
        every volume is there once, complete, exactly as its sidecar says."""
        root = tmp_path / "data"
        root.mkdir()
        with self.open(catalog_location):  # create the schema once, like a first run would
            pass
        ctx = multiprocessing.get_context("spawn")
        location = str(catalog_location)
        procs = [
            ctx.Process(
                target=write_and_index_volumes,
                args=(location, str(root), w, self.volumes_per_writer),
            )
            for w in range(self.writers)
        ]
        procs.append(ctx.Process(target=sync_repeatedly, args=(location, str(root), 8)))
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=240)
        assert [p.exitcode for p in procs] == [0] * len(procs)
        expected = sorted(
            f"concurrent/w{w}/v{i:03d}"
            for w in range(self.writers)
            for i in range(self.volumes_per_writer)
        )
        from_sidecars, _ = read_sidecars(root)
        with self.open(catalog_location) as cat:
            rows = cat.query()
            assert _ids(rows) == expected  # each once, none lost
            assert {r.status for r in rows} == {"complete"}
            assert rows == from_sidecars  # no stale stub won over its complete record
