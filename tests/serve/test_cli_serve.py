"""``emingest serve`` and ``emingest demo --serve`` as a user runs them: a process that prints
its URL and answers there until stopped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emingest.config import Settings


def _start(
    args: list[str], env: dict[str, str], timeout_s: float
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emingest.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + timeout_s
    seen = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if found:
            return proc, found.group(1)
    proc.kill()
    raise AssertionError("no URL printed:\n" + "".join(seen))


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_serve_prints_its_url_and_answers(
    served: Settings, stop: list[subprocess.Popen[str]]
) -> None:
    proc, url = _start(
        ["serve", "--port", "0", "--data-root", str(served.storage.data_root)], {}, timeout_s=60
    )
    stop.append(proc)
    page = requests.get(f"{url}/api/records", timeout=10).json()
    assert page["total"] == 5
    assert "emingest" in requests.get(f"{url}/", timeout=10).text
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) in (0, 130)  # uvicorn re-raises Ctrl-C after a clean shutdown


def test_serve_off_loopback_needs_a_token(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "emingest.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--data-root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "token" in out.stderr


@pytest.mark.slow
def test_demo_serve_leaves_the_api_up(tmp_path: Path, stop: list[subprocess.Popen[str]]) -> None:
    proc, url = _start(
        ["demo", "--root", str(tmp_path / "demo"), "--serve"],
        {"EMINGEST_SERVE__PORT": "0"},
        timeout_s=240,
    )
    stop.append(proc)
    page = requests.get(f"{url}/api/records", params={"status": "complete"}, timeout=10).json()
    assert page["total"] >= 5
    assert {r["source"] for r in page["items"]} >= {
        "idr",
        "empiar",
        "epfl",
        "openorganelle",
        "flyem",
    }
