"""``emingest catalog``: sync, list (filters, --json, --csv, plain table), show, report."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emingest.cli.catalog import catalog_app
from emingest.records import LocalPaths, VolumeRecord, error_status, write_record

runner = CliRunner()


def put(root: Path, source: str, source_id: str, name: str, **kw: Any) -> None:
    folder = root / source / source_id
    fields: dict[str, Any] = {
        "status": "complete",
        "voxel_size_nm": [8.0, 4.0, 4.0],
        "volume_shape": [16, 64, 64],
        "dtype": "uint8",
        "nbytes": 65536,
        **kw,
    }
    record = VolumeRecord(
        source=source,
        source_id=source_id,
        name=name,
        local_paths=LocalPaths(volume=str(folder / f"{name}.ome.zarr"), metadata="m"),
        timestamp="2025-01-01T00:00:00Z",
        **fields,
    )
    write_record(folder / f"{name}.json", record)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    put(data, "empiar", "11759", "stack", description="Mouse cortex")
    put(data, "empiar", "11759", "tomo", dtype="float32", voxel_size_nm=[1.0, 1.0, 1.0])
    put(data, "idr", "9846137", "img", status="saving-data", volume_shape=None, nbytes=None)
    put(data, "epfl", "ca1", "training", status=error_status("boom"), volume_shape=None)
    (data / "epfl" / "ca1" / "broken.json").write_text("[1, 2")
    return data


def invoke(*args: str | Path) -> Any:
    result = runner.invoke(catalog_app, [str(a) for a in args])
    return result


def test_list_plain_json_csv(root: Path) -> None:
    result = invoke("list", "--data-root", root)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "DTYPE"]
    assert len(lines) == 5
    assert any(line.startswith("empiar/11759/stack") and "16x64x64" in line for line in lines)

    result = invoke("list", "--data-root", root, "--json", "--source", "empiar")
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == ["empiar/11759/stack", "empiar/11759/tomo"]
    assert rows[0]["shape"] == [16, 64, 64] and rows[0]["voxel_size_nm"] == [8.0, 4.0, 4.0]

    result = invoke("list", "--data-root", root, "--csv", "--status", "complete")
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in table] == ["empiar/11759/stack", "empiar/11759/tomo"]
    assert table[0]["shape_z"] == "16" and table[0]["voxel_x_nm"] == "4.0"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "in-progress"], ["idr/9846137/img"]),
        (["--status", "error"], ["epfl/ca1/training"]),
        (["--dtype", "float32"], ["empiar/11759/tomo"]),
        (["--voxel-min", "2", "--voxel-max", "10", "--source", "empiar"], ["empiar/11759/stack"]),
        (["--voxel-max", "1"], ["empiar/11759/tomo"]),
        (
            ["--min-shape", "16", "64", "64", "--max-shape", "16", "64", "64"],
            ["empiar/11759/stack", "empiar/11759/tomo"],
        ),
        (["--max-shape", "8", "64", "64"], []),
        (["--text", "CORTEX"], ["empiar/11759/stack"]),
    ],
)
def test_list_filters(root: Path, args: list[str], expected: list[str]) -> None:
    result = invoke("list", "--data-root", root, "--json", *args)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)] == expected


def test_bad_options_exit_2(root: Path) -> None:
    assert invoke("list", "--data-root", root, "--status", "done").exit_code == 2
    assert invoke("list", "--data-root", root, "--json", "--csv").exit_code == 2


def test_show(root: Path) -> None:
    result = invoke("show", "empiar/11759/stack", "--data-root", root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["description"] == "Mouse cortex" and record["status"] == "complete"
    missing = invoke("show", "empiar/nope/x", "--data-root", root)
    assert missing.exit_code == 1 and "no record" in missing.stderr


def test_sync_after_deleting_database_rebuilds_identically(root: Path, tmp_path: Path) -> None:
    """The baseline is the catalog as the pipeline writes it (``index_record`` on every record
    write), not an earlier sync: ``catalog sync`` must rebuild exactly that."""
    from emingest.catalog import index_record, iter_sidecars
    from emingest.config import load_settings
    from emingest.errors import EmingestError
    from emingest.records import read_record

    db = tmp_path / "elsewhere" / "cat.sqlite"
    settings = load_settings(
        environ={},
        overrides={"storage": {"data_root": str(root)}, "catalog": {"db_path": str(db)}},
    )
    for path in iter_sidecars(root):
        try:
            record = read_record(path)
        except EmingestError:
            continue  # broken.json: the pipeline never wrote it
        index_record(settings, path, record)

    def dump() -> list[tuple[Any, ...]]:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT * FROM records ORDER BY id").fetchall()

    written = dump()
    assert len(written) == 4
    listed = invoke("list", "--data-root", root, "--db", db, "--json").stdout
    for p in db.parent.iterdir():
        p.unlink()
    result = invoke("sync", "--data-root", root, "--db", db)
    assert result.exit_code == 0, result.output
    assert "indexed 4 records" in result.stdout and "1 sidecars skipped" in result.stdout
    assert "broken.json" in result.stderr
    assert dump() == written
    assert invoke("list", "--data-root", root, "--db", db, "--json").stdout == listed


def test_report_command(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = invoke("report", "--data-root", root, "--out", out)
    assert result.exit_code == 0, result.output
    [json_path] = out.glob("metadata_catalog_*.json")
    [log_path] = out.glob("metadata_catalog_*.log")
    assert json_path.stem == log_path.stem
    report = json.loads(json_path.read_text())
    assert report["total_files_by_source"] == {"empiar": 2, "epfl": 2, "idr": 1}
    assert report["status_by_source"]["idr"]["in-progress"] == 1
    assert "1 unreadable sidecars" in result.stderr
