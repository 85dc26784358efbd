"""The command line: exit codes, messages, log files, config show."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import tifffile
from typer.testing import CliRunner

from emingest.cli import app
from emingest.records import read_record

runner = CliRunner()


def test_ingest_local_writes_log_and_exits_zero(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    a = np.arange(6 * 20 * 24, dtype=np.uint16).reshape(6, 20, 24)
    tifffile.imwrite(tmp_path / "v.tif", a)
    result = runner.invoke(
        app,
        ["ingest", "local", "v.tif", "--voxel-size-nm", "30", "4", "4", "--chunk", "8", "8", "8"],
    )
    assert result.exit_code == 0, result.output
    # Logs go under the data root by default: nothing is written beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "v.tif"]
    [log] = (tmp_path / "data" / "logs").glob("local_*.log")
    assert "complete" in log.read_text()
    [record] = (tmp_path / "data" / "local").glob("v-*/v.json")
    rec = read_record(record)
    assert rec.voxel_size_nm == [30.0, 4.0, 4.0] and rec.dtype == "uint16"


def test_a_failed_volume_gives_a_clear_line_and_exit_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "ok.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    (tmp_path / "broken.mrc").write_bytes(b"\x00" * 100)
    result = runner.invoke(app, ["ingest", "local", "ok.tif", "broken.mrc"])
    assert result.exit_code == 1
    assert "broken.mrc" in result.output and "1 of 2 volumes failed" in result.output
    assert "ok: complete" in result.output


def test_invalid_settings_exit_two(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\nchunk_shape = [0, 1, 1]\n")
    result = runner.invoke(app, ["ingest", "local", "x.tif", "--config", str(bad)])
    assert result.exit_code == 2
    assert "chunk_shape" in result.output


def test_config_show_round_trips_through_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[storage]\nzstd_level = 5\n[sources.local]\n")
    result = runner.invoke(app, ["config", "show", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    parsed = tomllib.loads(result.output)
    assert parsed["storage"]["zstd_level"] == 5
    assert parsed["pipeline"]["tile_bytes"] > 0


def test_schema_check_passes_for_the_committed_schema() -> None:
    root = Path(__file__).resolve().parents[1]
    result = runner.invoke(
        app, ["schema", "--check", "--output", str(root / "schemas" / "record.schema.json")]
    )
    assert result.exit_code == 0, result.output


def test_demo_runs_the_pipeline_against_the_replicas_offline(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--root", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    data = tmp_path / "demo" / "data"
    # Records are data/<source>/<source_id>/<name>.json (caches and stores are elsewhere).
    records = [
        p
        for p in data.glob("*/*/*.json")
        if not any(part.startswith(".") for part in p.relative_to(data).parts)
    ]
    sources = {p.relative_to(data).parts[0] for p in records}
    assert sources == {"idr", "empiar", "epfl", "openorganelle", "flyem"}
    assert (data / "catalog.sqlite").exists()
    [report] = data.glob("metadata_catalog_*.json")
    assert set(json.loads(report.read_text())["total_files_by_source"]) == sources
    for p in records:
        assert read_record(p).status == "complete", p
    labels = data / "epfl" / "ca1-hippocampus" / "training.ome.zarr" / "labels"
    assert (labels / "training_groundtruth" / "s0").is_dir()


def test_dry_run_lists_the_plan_and_downloads_nothing(tmp_path: Path, monkeypatch) -> None:
    from emingest.testing.empiar import EmpiarReplica

    monkeypatch.chdir(tmp_path)
    with EmpiarReplica(tmp_path / "replica") as empiar:
        result = runner.invoke(
            app,
            [
                "ingest",
                "empiar",
                "11759",
                "--api-url",
                empiar.api_url,
                "--files-url",
                empiar.files_http_url,
                "--dry-run",
            ],
        )
        names = empiar.dm3_names
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("empiar/EMPIAR-11759/")
    assert f"members={len(names)} (" in lines[0] and names[0] in lines[0] and names[-1] in lines[0]
    assert lines[-1] == "1 volume; --dry-run: nothing downloaded, no data written"
    assert not (tmp_path / "data").exists()
