"""The example plug-in in examples/npy-source, installed beside emingest (a dist-info with its
entry point on the path, as pip would leave it), runs through ``emingest ingest``,
``emingest run`` with its preflight, the catalog and the shipped contract tests, with no line
of emingest changed."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import zarr

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "npy-source"
CELLS = np.arange(6 * 10 * 12, dtype=">u2").reshape(6, 10, 12)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding the example's dist-info, entry points taken from its pyproject."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = tmp_path_factory.mktemp("site")
    dist = site / f"emingest_npy_source-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


@pytest.fixture(scope="module")
def folder_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("npy")
    np.save(folder / "cells.npy", CELLS)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def emingest(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE / "src")]),
    }
    env = {k: v for k, v in env.items() if not k.startswith("EMINGEST_")}
    return subprocess.run(
        [sys.executable, "-m", "emingest.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_plugin_gets_its_own_ingest_command(site: Path, tmp_path: Path) -> None:
    listed = emingest(site, tmp_path, "ingest", "--help")
    assert listed.returncode == 0, listed.stderr
    assert "npy" in listed.stdout and "Ingest 3-D .npy files" in listed.stdout
    own = emingest(site, tmp_path, "ingest", "npy", "--help")
    assert own.returncode == 0, own.stderr
    assert "--base-url" in own.stdout and "[sources.npy.base_url]" in own.stdout


def test_ingest_then_catalog(site: Path, folder_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = emingest(
        site, tmp_path, "ingest", "npy", "cells", "--base-url", folder_url,
        "--data-root", str(data), "--chunk", "4", "8", "8", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (volume,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert volume["id"] == "npy/files/cells" and volume["status"] == "complete"
    assert volume["shape"] == [6, 10, 12]
    store = zarr.open_group(data / "npy" / "files" / "cells.ome.zarr", mode="r")
    np.testing.assert_array_equal(store["s0"][:], CELLS)
    listed = emingest(site, tmp_path, "catalog", "list", "--json", "--data-root", str(data))
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == ["npy/files/cells"]
    missing = emingest(
        site, tmp_path, "ingest", "npy", "nope", "--base-url", folder_url, "--data-root", str(data)
    )
    assert missing.returncode == 1 and "nope" in missing.stderr


def test_run_preflights_the_plugin(site: Path, folder_url: str, tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        f"[storage]\ndata_root = {str(tmp_path / 'data')!r}\n"
        f"[sources.npy]\nbase_url = {folder_url!r}\n"
        '[[datasets]]\nname = "npy-cells"\nsource = "npy"\nids = ["cells"]\n',
        encoding="utf-8",
    )
    done = emingest(site, tmp_path, "run", str(config), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"preflight npy            ok          {folder_url}" in done.stderr
    (volume,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert volume["status"] == "complete"
    unreachable = tmp_path / "down.toml"
    unreachable.write_text(
        config.read_text().replace(folder_url, "http://127.0.0.1:9/"), encoding="utf-8"
    )
    down = emingest(site, tmp_path, "run", str(unreachable), "--preflight-timeout", "2")
    assert down.returncode == 1 and "UNREACHABLE" in down.stdout


def test_the_plugin_passes_the_shipped_contract_tests(site: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE / "src")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLE / "tests"), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(EXAMPLE), "-o", "addopts="],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout
