"""The command line as a user reads it (issue 10, part 5): literal help, config check, the
renamed OpenOrganelle flag, exit codes, --json, one-line setting errors, nothing written
outside the data root and the log folder, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from emingest.cli import app
from emingest.records import read_record
from emingest.sources.base import options_for
from emingest.sources.openorganelle import OpenOrganelleSource

runner = CliRunner()


def _tif(path: Path, shape: tuple[int, int, int] = (4, 16, 16)) -> Path:
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def test_help_text_keeps_square_brackets() -> None:
    ingest = runner.invoke(app, ["ingest", "local", "--help"])
    assert ingest.exit_code == 0
    text = " ".join(ingest.output.split())
    assert "[storage.data_root]" in text and "[pipeline.workers]" in text
    run = runner.invoke(app, ["run", "--help"])
    assert "[[datasets]]" in " ".join(run.output.split())


def test_config_check_exists_and_says_what_is_wrong(tmp_path: Path) -> None:
    assert "check" in runner.invoke(app, ["config", "--help"]).output
    ok = runner.invoke(app, ["config", "check"])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[datasets]]\nname = "x"\nsource = "openorganelle"\nids = ["a"]\n'
        'options = { levelz = "1" }\n'
        '[[datasets]]\nname = "y"\nsource = "no-such-archive"\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 2
    assert "levelz" in result.output and "no-such-archive" in result.output
    run = runner.invoke(app, ["run", str(bad)])  # refused before any preflight
    assert run.exit_code == 2 and "levelz" in run.output and "preflight" not in run.output


def test_openorganelle_source_levels_is_its_own_flag() -> None:
    help_text = " ".join(runner.invoke(app, ["ingest", "openorganelle", "--help"]).output.split())
    assert "--source-levels" in help_text
    assert "--levels <int> Most pyramid levels" in help_text  # the same meaning everywhere
    # TOML files written before the rename keep working; the defaults use the new name
    assert options_for(OpenOrganelleSource, {"levels": "1-8"}) == {"source_levels": "1-8"}
    (default,) = OpenOrganelleSource.default_datasets()
    assert default.options == {"source_levels": "1-8"}


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "empiar", "abc"],
        ["ingest", "idr"],
        ["ingest", "idr", "12x"],
        ["ingest", "epfl", "nope"],
        ["ingest", "flyem", "--box", "1:2,3"],
        ["ingest", "local"],
        ["ingest", "local", "v.tif", "--voxel-size-nm", "-1", "1", "1"],
        ["ingest", "local", "v.tif", "--voxel-size-nm", "nan", "1", "1"],
        ["ingest", "nosuch", "1"],
    ],
)
def test_invalid_arguments_exit_two_and_write_nothing(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert list(tmp_path.iterdir()) == []


def test_json_gives_one_object_per_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _tif(tmp_path / "ok.tif")
    (tmp_path / "broken.mrc").write_bytes(b"\x00" * 100)
    result = runner.invoke(app, ["ingest", "local", "ok.tif", "broken.mrc", "--json"])
    assert result.exit_code == 1
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert objects[0]["status"] == "complete"
    assert objects[1]["status"].startswith("error: ")
    ok = objects[0]
    assert set(ok) == {"id", "status", "shape", "voxel_size_nm", "record"}
    assert ok["shape"] == [4, 16, 16] and ok["id"].startswith("local/ok-")
    assert read_record(Path(ok["record"])).status == "complete"


def test_run_json(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        f"[storage]\ndata_root = {str(tmp_path / 'data')!r}\n"
        '[[datasets]]\nname = "mine"\nsource = "local"\n'
        f"ids = [{str(_tif(tmp_path / 'a.tif'))!r}]\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["run", str(config), "--json"])
    assert result.exit_code == 0, result.output
    (volume,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert volume["status"] == "complete" and volume["shape"] == [4, 16, 16]


def test_a_shard_that_is_not_a_multiple_of_the_chunk_is_one_line() -> None:
    result = runner.invoke(
        app,
        ["ingest", "local", "x.tif", "--chunk", "64", "64", "64", "--shard", "96", "128", "128"],
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "96 128 128 is not a multiple of the chunk shape 64 64 64" in lines[0]


def test_catalog_list_on_a_missing_catalog_is_empty_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    table = runner.invoke(app, ["catalog", "list"])
    assert table.exit_code == 0, table.output
    assert table.output.split() == ["ID", "STATUS", "DTYPE", "SHAPE", "(ZxYxX)", "VOXEL", "NM",
                                    "SIZE", "DESCRIPTION"]  # fmt: skip
    as_json = runner.invoke(app, ["catalog", "list", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output) == []
    shown = runner.invoke(app, ["catalog", "show", "local/a/b"])
    assert shown.exit_code == 1 and "no record" in shown.output
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_written_outside_the_data_root_and_the_log_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    _tif(work / "v.tif")
    data = tmp_path / "data"
    result = runner.invoke(app, ["ingest", "local", "v.tif", "--data-root", str(data)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in work.iterdir()] == ["v.tif"]
    [log] = (data / "logs").glob("local_*.log")  # logs under the data root by default
    assert "complete" in log.read_text()


def test_schema_prints_unless_told_where_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    printed = runner.invoke(app, ["schema"])
    assert printed.exit_code == 0 and json.loads(printed.output)["title"]
    assert list(tmp_path.iterdir()) == []
    written = runner.invoke(app, ["schema", "--output", "s.json"])
    assert written.exit_code == 0 and json.loads((tmp_path / "s.json").read_text())


# -- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_stops_soon_leaves_a_resumable_volume_and_exits_130(tmp_path: Path) -> None:
    from emingest.testing.flyem import FlyEMReplica

    env = {k: v for k, v in os.environ.items() if not k.startswith("EMINGEST_")}
    # small tiles, one block per request: many slow region tasks to interrupt
    env |= {
        "EMINGEST_PIPELINE__TILE_BYTES": str(64**3),
        "EMINGEST_PIPELINE__WORKERS": "2",
        "EMINGEST_SOURCES__FLYEM__MAX_PAYLOAD_BYTES": str(64**3),
    }
    with FlyEMReplica(tmp_path / "replica") as replica:
        args = [sys.executable, "-m", "emingest.cli", "ingest", "flyem",
                "--box", "0:192,0:256,0:256", "--dvid-url", replica.dvid_url,
                "--data-root", str(tmp_path / "data"), "--chunk", "32", "32", "32"]  # fmt: skip
        # 48 tiles of 1 s requests on 2 workers: far longer than any delay in sending SIGINT
        replica.faults.latency_s = 1.0
        proc = subprocess.Popen(
            args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        seen = []
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if ": started," in line:  # the volume's region tasks are running
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        stderr = "".join(seen) + err
        assert proc.returncode == 130, stderr
        assert "interrupted: run the same command to resume" in stderr
        (record_path,) = (tmp_path / "data" / "flyem").glob("*/*.json")
        assert read_record(record_path).status == "saving-data"  # not an error: resumable
        (journal,) = record_path.parent.glob(".*.journal")
        assert journal.exists()

        replica.faults.latency_s = 0.0
        again = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
        assert again.returncode == 0, again.stderr
        record = read_record(record_path)
        assert record.status == "complete" and record.volume_shape == [192, 256, 256]


# -- the generic ingest command -----------------------------------------------------------

TODAYS_FLAGS = {
    "local": ["--voxel-size-nm"],
    "idr": ["--dataset", "--api-url", "--files-url", "--keep-raw"],
    "epfl": ["--base-url", "--keep-raw"],
    "empiar": ["--files", "--max-files", "--api-url", "--files-url"],
    "openorganelle": [
        "--array",
        "--source-levels",
        "--region",
        "--list",
        "--endpoint-url",
        "--bucket",
    ],
    "flyem": ["--via", "--box", "--crop", "--seed", "--scale", "--dvid-url", "--precomputed-url"],
}
COMMON_FLAGS = ["--config", "--data-root", "--workers", "--chunk", "--shard", "--levels",
                "--force", "--dry-run", "--json"]  # fmt: skip


@pytest.mark.parametrize("source", sorted(TODAYS_FLAGS))
def test_every_source_keeps_its_flags_and_has_the_common_ones(source: str) -> None:
    result = runner.invoke(app, ["ingest", source, "--help"])
    assert result.exit_code == 0, result.output
    for flag in TODAYS_FLAGS[source] + COMMON_FLAGS:
        assert flag in result.output, (source, flag)


def test_a_repeatable_source_option_reaches_discover(tmp_path: Path) -> None:
    from emingest.testing.empiar import EmpiarReplica

    with EmpiarReplica(tmp_path / "replica") as empiar:
        first_two, third = empiar.dm3_names[:2], empiar.dm3_names[2]
        result = runner.invoke(
            app,
            ["ingest", "empiar", "11759", "--api-url", empiar.api_url,
             "--files-url", empiar.files_http_url, "--data-root", str(tmp_path / "data"),
             "--files", f"*{first_two[0]}", "--files", f"*{first_two[1]}", "--dry-run"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert first_two[0] in result.output and first_two[1] in result.output
    assert third not in result.output


def test_a_source_flag_that_shadows_a_common_one_is_refused() -> None:
    from pydantic import Field

    from emingest.cli.ingest import check_flags
    from emingest.errors import ConfigError
    from emingest.sources.base import SourceOptions
    from emingest.sources.local import LocalSource

    class Clashing(SourceOptions):
        levels: str | None = Field(None, description="the archive's levels")

    class ClashingSource(LocalSource):
        options_model = Clashing

    with pytest.raises(ConfigError, match="--levels"):
        check_flags(ClashingSource)
    check_flags(LocalSource)  # the built-ins pass


def test_options_that_cannot_be_flags_are_reported_for_that_source_only() -> None:
    from pydantic import Field

    from emingest.cli.ingest import _buildable, make_command
    from emingest.errors import ConfigError
    from emingest.sources.base import SourceOptions
    from emingest.sources.local import LocalSource

    class Odd(SourceOptions):
        boxes: list[list[int]] | None = Field(None, description="not a flag")

    class OddSource(LocalSource):
        options_model = Odd

    with pytest.raises(ConfigError, match="odd"):
        _buildable("odd", make_command("odd", OddSource))
    _buildable("local", make_command("local", LocalSource))
