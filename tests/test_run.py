"""`emingest run`: the configured datasets against the replicas, preflight, summary, re-runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emingest.cli import app, demo_datasets
from emingest.config import load_settings
from emingest.config_toml import settings_to_toml
from emingest.records import read_record
from emingest.testing.replicas import ReplicaSet

runner = CliRunner()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory):
    with ReplicaSet(tmp_path_factory.mktemp("replicas"), only=("idr", "epfl", "flyem")) as rs:
        yield rs


def write_config(path: Path, replicas: ReplicaSet, data: Path, **source_overrides) -> Path:
    sources = replicas.source_settings()
    for name, values in source_overrides.items():
        sources[name] = {**sources.get(name, {}), **values}
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(data), "chunk_shape": [32, 32, 32]},
            "logging": {"log_dir": str(path.parent / "logs")},
            "sources": sources,
        },
    )
    datasets = [d for d in demo_datasets(settings) if d.source in ("idr", "epfl", "flyem")]
    settings = settings.model_copy(update={"datasets": datasets})
    path.write_text(settings_to_toml(settings))
    return path


def summary(output: str) -> dict[tuple[str, str], str]:
    """(dataset, volume) -> status, from the summary table that ends a run."""
    rows = [line.split() for line in output.splitlines() if re.match(r"[\w-]+:[\w-]+\s", line)]
    return {(row[0], row[1]): row[2] for row in rows}


def test_an_unreachable_archive_fails_fast_and_the_others_complete(
    tmp_path: Path, replicas: ReplicaSet
) -> None:
    # Nothing listens on port 9 of 127.0.0.1 (discard): connection refused at once.
    cfg = write_config(
        tmp_path / "run.toml", replicas, tmp_path / "data", idr={"api_url": "http://127.0.0.1:9"}
    )
    result = runner.invoke(app, ["run", str(cfg), "--preflight-timeout", "2"])
    assert result.exit_code == 1, result.output
    assert "preflight idr" in result.output and "UNREACHABLE" in result.output
    assert "archive unreachable" in result.output
    assert "No archive answered" not in result.output  # the others did
    data = tmp_path / "data"
    records = [
        p
        for p in data.glob("*/*/*.json")
        if not any(part.startswith(".") for part in p.relative_to(data).parts)
    ]
    by_source = {}
    for p in records:
        by_source.setdefault(p.relative_to(tmp_path / "data").parts[0], []).append(
            read_record(p).status
        )
    assert "idr" not in by_source  # failed before any volume was described
    assert by_source["epfl"] == ["complete"] * 5 and by_source["flyem"] == ["complete"]
    logs = sorted(p.name.split("_")[0] for p in (tmp_path / "logs").glob("*.log"))
    assert {"epfl", "flyem", "idr", "run"} <= set(logs)


def test_a_second_run_skips_complete_volumes(tmp_path: Path, replicas: ReplicaSet) -> None:
    cfg = write_config(tmp_path / "run.toml", replicas, tmp_path / "data")
    first = runner.invoke(app, ["run", str(cfg)])
    assert first.exit_code == 0, first.output
    record = next(
        p for p in (tmp_path / "data" / "idr").glob("*/*.json") if not p.name.startswith(".")
    )
    stamp = json.loads(record.read_text())["timestamp"]
    before = len(replicas.replicas["idr"].request_log)
    second = runner.invoke(app, ["run", str(cfg)])
    assert second.exit_code == 0, second.output
    # the summary table: every volume of the first run, and only those, now says skipped
    assert summary(second.output) == {v: "skipped" for v in summary(first.output)}
    assert set(summary(first.output).values()) == {"complete"} and len(summary(first.output)) == 7
    assert json.loads(record.read_text())["timestamp"] == stamp
    # Only metadata was asked again (preflight, discovery, describe with the fingerprint's
    # HEAD of the original, to see whether it changed), no file download.
    again = replicas.replicas["idr"].request_log[before:]
    assert not any(m == "GET" and path.endswith(".tif") for m, path, _ in again)
    assert any(m == "HEAD" and path.endswith(".tif") for m, path, _ in again)


def test_when_no_archive_answers_the_run_says_so_and_points_to_the_demo(tmp_path: Path) -> None:
    cfg = tmp_path / "offline.toml"
    cfg.write_text(
        f"[storage]\ndata_root = {str(tmp_path / 'data')!r}\n"
        f"[logging]\nlog_dir = {str(tmp_path / 'logs')!r}\n"
        '[sources.idr]\napi_url = "http://127.0.0.1:9"\n'
        '[[datasets]]\nname = "idr-1"\nsource = "idr"\nids = ["1"]\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["run", str(cfg), "--preflight-timeout", "2"])
    assert result.exit_code == 1, result.output
    assert "No archive answered" in result.output and "emingest demo" in result.output


def test_a_dataset_whose_discovery_fails_is_reported_and_the_others_complete(
    tmp_path: Path, replicas: ReplicaSet
) -> None:
    cfg = write_config(tmp_path / "run.toml", replicas, tmp_path / "data")
    cfg.write_text(
        cfg.read_text(encoding="utf-8")
        + '\n[[datasets]]\nname = "epfl-missing"\nsource = "epfl"\nids = ["nosuch"]\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 1, result.output
    rows = summary(result.output)
    failed = rows[("epfl:epfl-missing", "-")]
    assert failed.startswith("error:"), failed
    # the source refuses a name it cannot have before any request (check_request)
    [row] = [line for line in result.output.splitlines() if line.startswith("epfl:epfl-missing")]
    assert "nosuch" in row and "ConfigError" in row, row
    others = {k: v for k, v in rows.items() if k[0] != "epfl:epfl-missing"}
    assert len(others) == 7 and set(others.values()) == {"complete"}


def _s3_run_config(tmp_path: Path, data_root: str, endpoint: str, tif: Path) -> Path:
    cfg = tmp_path / "s3.toml"
    cfg.write_text(
        f'[storage]\ndata_root = "{data_root}"\ns3_endpoint_url = "{endpoint}"\n'
        f"work_dir = {str(tmp_path / 'work')!r}\n"
        "[embed]\nmodels = []\n"
        f'[[datasets]]\nname = "mine"\nsource = "local"\nids = [{str(tif)!r}]\n',
        encoding="utf-8",
    )
    return cfg


def test_a_run_into_a_bucket_checks_it_first_and_starts_nothing_when_it_cannot_write(
    tmp_path: Path, s3_root
) -> None:
    import numpy as np
    import tifffile

    tif = tmp_path / "v.tif"
    tifffile.imwrite(tif, np.arange(8 * 16 * 16, dtype=np.uint16).reshape(8, 16, 16))
    missing = f"s3://no-such-bucket-{s3_root.bucket}/data"
    cfg = _s3_run_config(tmp_path, missing, s3_root.endpoint_url, tif)
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 1, result.output
    assert re.search(r"preflight data root\s+UNWRITABLE\s+" + re.escape(missing), result.output)
    assert "NoSuchBucket" in result.output
    assert not (tmp_path / "work" / ".locks").exists()  # no volume was begun

    cfg = _s3_run_config(tmp_path, s3_root.url, s3_root.endpoint_url, tif)
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    assert re.search(r"preflight data root\s+ok\s+" + re.escape(s3_root.url), result.output)
    keys = s3_root.object_keys()
    assert any(k.endswith("/v.json") for k in keys)
    assert not [k for k in keys if ".emingest-preflight" in k]  # the probe cleaned up


def test_a_run_on_dask_ingests_and_embeds_on_one_cluster(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import numpy as np
    import tifffile

    from emingest.config import DatasetSettings
    from emingest.run import run_datasets

    tif = tmp_path / "v.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(tif, rng.integers(0, 255, (8, 256, 256), dtype=np.uint8))
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data")},
            "pipeline": {"executor": "dask", "workers": 2},
            "logging": {"log_dir": str(tmp_path / "logs")},
            "embed": {"patch_nm": 64.0},
        },
    )
    mine = DatasetSettings(name="mine", source="local", ids=[str(tif)])
    lines: list[str] = []
    with caplog.at_level(logging.INFO, logger="emingest"):
        [outcome] = run_datasets(settings, [mine], report_line=lines.append)
    assert [r.status for r in outcome.results] == ["complete"]
    started = [r.getMessage() for r in caplog.records if "Dask executor" in r.getMessage()]
    assert len(started) == 2, started  # the ingest's executor, then the embedding's
    addresses = {re.search(r"tcp://[\d.:]+", m).group(0) for m in started}  # type: ignore[union-attr]
    assert len(addresses) == 1, started  # one scheduler: the embedding was lent the cluster
    [embedded] = [line for line in lines if line.startswith("embed ")]
    assert ": embedded," in embedded and " 0 patches" not in embedded, embedded
