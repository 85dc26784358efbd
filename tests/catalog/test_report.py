"""``catalog report``: ratios, status, validation and key coverage against records written here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emingest.catalog.report import build_report, expected_keys, summary_text, write_report
from emingest.records import LocalPaths, VolumeRecord, error_status, write_record


def put(root: Path, source: str, name: str, extra: dict[str, Any], **kw: Any) -> None:
    folder = root / source / "ds1"
    fields: dict[str, Any] = {"status": "complete", "voxel_size_nm": [4.0, 4.0, 4.0], **kw}
    record = VolumeRecord(
        source=source,
        source_id="ds1",
        name=name,
        local_paths=LocalPaths(volume=str(folder / f"{name}.ome.zarr"), metadata="m"),
        timestamp="2025-01-01T00:00:00Z",
        additional_metadata=extra,
        **fields,
    )
    write_record(folder / f"{name}.json", record)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    put(root, "empiar", "c1", {"k1": 1, "k2": {"nested": 2}})
    put(root, "empiar", "c2", {"k1": 1})
    put(root, "empiar", "stub", {"k1": 1}, status="saving-data")
    put(root, "empiar", "err", {}, status=error_status("HTTP 404 on file.dm3"))
    (root / "empiar" / "ds1" / "bad.json").write_text('{"status": "complete", ')  # malformed
    # valid JSON, but not a valid record: missing required fields, one unknown key
    (root / "empiar" / "ds1" / "old.json").write_text(
        json.dumps({"source": "empiar", "status": "complete", "legacy_field": 1})
    )
    # zarr metadata inside the store is not a record
    (root / "empiar" / "ds1" / "c1.ome.zarr").mkdir()
    (root / "empiar" / "ds1" / "c1.ome.zarr" / "zarr.json").write_text("{}")
    # a second source with three records, for 4-place rounding
    put(root, "idr", "a", {"Channels": 1})
    put(root, "idr", "b", {})
    put(root, "idr", "c", {})
    return root


def test_report_ratios_status_and_validation(data_root: Path) -> None:
    r = build_report(data_root)
    assert r["total_files_by_source"] == {"empiar": 6, "idr": 3}
    assert r["records_by_source"] == {"empiar": 5, "idr": 3}  # the malformed file is no record

    schema_keys = set(expected_keys())
    assert set(r["distinct_keys"]) == schema_keys | {"legacy_field"}
    empiar = r["key_ratios_by_source"]["empiar"]
    assert empiar["status"] == empiar["source"] == 1.0
    assert empiar["name"] == empiar["additional_metadata"] == empiar["timestamp"] == 0.8
    assert empiar["legacy_field"] == 0.2
    assert set(r["key_ratios_by_source"]["idr"].values()) == {1.0}

    extra = r["additional_metadata"]
    assert extra["distinct_keys"] == ["Channels", "k1", "k2"]  # nested keys stay inside k2
    assert extra["key_ratios_by_source"]["empiar"] == {"k1": 0.6, "k2": 0.2}
    assert extra["key_ratios_by_source"]["idr"] == {"Channels": 0.3333}
    assert extra["expected_vs_collected_by_source"]["empiar"]["expected"] == ["k1", "k2"]
    assert extra["expected_vs_collected_by_source"]["empiar"]["missing_expected"] == {
        "k1": 2,
        "k2": 4,
    }

    assert r["status_by_source"]["empiar"] == {
        "complete": 3,  # c1, c2 and the schema-invalid old.json
        "in-progress": 1,
        "error": 1,
        "unknown": 0,
    }
    assert r["status_by_source"]["idr"]["complete"] == 3
    [err] = r["errors_by_source"]["empiar"]
    assert err["status"] == "error: HTTP 404 on file.dm3"
    assert err["path"].endswith("err.json")

    val = r["validation_by_source"]["empiar"]
    assert (val["records"], val["valid"], val["invalid"]) == (5, 4, 1)
    assert val["missing_required"] == {
        "local_paths": 1,
        "name": 1,
        "source_id": 1,
        "timestamp": 1,
        "voxel_size_nm": 1,
    }
    [bad] = val["invalid_records"]
    assert bad["path"].endswith("old.json")
    assert any(e.startswith("legacy_field:") for e in bad["errors"])
    assert r["validation_by_source"]["idr"]["invalid"] == 0

    ev = r["expected_vs_collected_by_source"]["empiar"]
    assert ev["unexpected"] == {"legacy_field": 1}
    assert ev["missing_expected"]["name"] == 1 and "status" not in ev["missing_expected"]
    assert r["expected_vs_collected_by_source"]["idr"] == {
        "collected": sorted(schema_keys),
        "missing_expected": {},
        "unexpected": {},
    }

    [unreadable] = r["unreadable"]
    assert unreadable["path"].endswith("bad.json") and unreadable["source"] == "empiar"


def test_write_report_files_and_log(data_root: Path, tmp_path: Path) -> None:
    r = build_report(data_root)
    json_path, log_path = write_report(r, tmp_path / "out", stamp="20250101_120000")
    assert json_path.name == "metadata_catalog_20250101_120000.json"
    assert log_path.name == "metadata_catalog_20250101_120000.log"
    assert json.loads(json_path.read_text()) == r
    text = log_path.read_text()
    assert text == summary_text(r)
    assert "bad.json" in text and "old.json" in text and "HTTP 404" in text
    assert "empiar: 6 files, 3 complete, 1 in progress, 1 error" in text


def test_empty_data_root(tmp_path: Path) -> None:
    r = build_report(tmp_path)
    assert r["total_files_by_source"] == {} and r["distinct_keys"] == [] and r["unreadable"] == []
    assert "Metadata catalog" in summary_text(r)
