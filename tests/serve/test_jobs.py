"""Ingest jobs over HTTP: the CLI's pipeline in the server, progress, cancel, restart, token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emingest.errors import ConfigError
from emingest.records import read_record
from emingest.serve import create_app
from emingest.serve.loopback import ApiServer
from emingest.testing.epfl import EPFLReplica

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait_for(
    fetch: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = fetch()
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last state {state}")
        time.sleep(0.05)


@pytest.fixture
def job_root(tmp_path: Path, epfl_replica: EPFLReplica) -> Iterator[Path]:
    epfl_replica.faults.clear()
    yield tmp_path
    epfl_replica.faults.clear()


def job_url(srv: ApiServer, job_id: str = "") -> str:
    return f"{srv.url}/api/jobs{'/' + job_id if job_id else ''}"


def test_job_runs_the_pipeline_and_reports_progress(
    job_root: Path, epfl_replica: EPFLReplica, make_settings: Any
) -> None:
    settings = make_settings(job_root, epfl_replica, token=TOKEN)
    with ApiServer(settings) as srv:
        resp = requests.post(
            job_url(srv),
            json={"source": "epfl", "ids": ["training", "training_groundtruth"]},
            headers=AUTH,
            timeout=10,
        )
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["status"] in ("queued", "running")
        final = wait_for(
            lambda: requests.get(job_url(srv, job["id"]), headers=AUTH, timeout=10).json(),
            lambda s: s["status"] not in ("queued", "running"),
        )
        assert final["status"] == "complete", final
        assert [v["id"] for v in final["volumes"]] == [
            "epfl/ca1-hippocampus/training",
            "epfl/ca1-hippocampus/training_groundtruth",
        ]
        assert all(v["status"] == "complete" for v in final["volumes"])
        assert final["bytes_done"] == final["bytes_total"] > 16 * 64 * 96
        assert final["rate_bytes_per_s"] > 0 and final["errors"] == []
        listed = requests.get(job_url(srv), headers=AUTH, timeout=10).json()["items"]
        assert [j["id"] for j in listed] == [job["id"]]
        rec = read_record(Path(settings.storage.data_root) / "epfl/ca1-hippocampus/training.json")
        assert rec.is_complete
        # the catalog knows the new volumes at once
        records = requests.get(f"{srv.url}/api/records", timeout=10).json()
        assert records["total"] == 2


def test_job_errors_are_reported(
    job_root: Path, epfl_replica: EPFLReplica, make_settings: Any
) -> None:
    settings = make_settings(job_root, epfl_replica)
    with ApiServer(settings) as srv:
        bad = requests.post(job_url(srv), json={"source": "nosuch"}, timeout=10)
        assert "nosuch" in bad.json()["error"] and bad.status_code == 400
        extra = requests.post(job_url(srv), json={"source": "epfl", "bogus": 1}, timeout=10)
        assert extra.status_code == 422
        job = requests.post(
            job_url(srv), json={"source": "epfl", "ids": ["no_such_file"]}, timeout=10
        ).json()
        final = wait_for(
            lambda: requests.get(job_url(srv, job["id"]), timeout=10).json(),
            lambda s: s["status"] not in ("queued", "running"),
        )
        assert final["status"] == "failed"
        assert "no_such_file" in " ".join(final["errors"])
        missing = requests.get(job_url(srv, "nope"), timeout=10)
        assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_cancel_leaves_the_volume_resumable_and_restart_lists_past_jobs(
    job_root: Path, epfl_replica: EPFLReplica, make_settings: Any
) -> None:
    settings = make_settings(job_root, epfl_replica)
    epfl_replica.faults.latency_s = (
        0.3  # every request slow: the job is still running when cancelled
    )
    with ApiServer(settings) as srv:
        job = requests.post(
            job_url(srv), json={"source": "epfl", "ids": ["volumedata"]}, timeout=10
        ).json()
        # the volume has started (describe, then a download slowed by the latency)
        wait_for(
            lambda: requests.get(job_url(srv, job["id"]), timeout=10).json(),
            lambda s: [v["status"] for v in s["volumes"]] == ["running"],
        )
        cancelled = requests.delete(job_url(srv, job["id"]), timeout=10)
        assert cancelled.status_code == 200
        final = wait_for(
            lambda: requests.get(job_url(srv, job["id"]), timeout=10).json(),
            lambda s: s["status"] not in ("queued", "running"),
        )
        assert final["status"] == "cancelled"
        assert final["volumes"][0]["status"] == "cancelled (resumable)", final
    epfl_replica.faults.clear()
    record = Path(settings.storage.data_root) / "epfl/ca1-hippocampus/volumedata.json"
    assert "JobCancelledError" in read_record(record).status
    # a new server over the same data: the past job is listed, then the same job resumes
    with ApiServer(settings) as srv:
        past = requests.get(job_url(srv), timeout=10).json()["items"]
        assert [(j["id"], j["status"]) for j in past] == [(job["id"], "cancelled")]
        again = requests.post(
            job_url(srv), json={"source": "epfl", "ids": ["volumedata"]}, timeout=10
        ).json()
        final = wait_for(
            lambda: requests.get(job_url(srv, again["id"]), timeout=10).json(),
            lambda s: s["status"] not in ("queued", "running"),
        )
        assert final["status"] == "complete", final
    assert read_record(record).is_complete


def test_interrupted_job_is_listed_after_restart(
    job_root: Path, epfl_replica: EPFLReplica, make_settings: Any
) -> None:
    settings = make_settings(job_root, epfl_replica)
    folder = Path(settings.storage.data_root) / ".jobs"
    folder.mkdir(parents=True)
    (folder / "20260101-000000-abcdef.json").write_text(
        '{"id": "20260101-000000-abcdef", "status": "running", "request": {"source": "epfl"},'
        ' "volumes": [{"id": "epfl/ca1-hippocampus/training", "status": "running"}]}'
    )
    (folder / "broken.json").write_text("{not json")
    with ApiServer(settings) as srv:
        items = requests.get(job_url(srv), timeout=10).json()["items"]
    assert [(j["id"], j["status"]) for j in items] == [("20260101-000000-abcdef", "interrupted")]


def test_token_guards_the_job_endpoints(
    job_root: Path, epfl_replica: EPFLReplica, make_settings: Any
) -> None:
    settings = make_settings(job_root, epfl_replica, token=TOKEN)
    with ApiServer(settings) as srv:
        for method, url in (
            ("GET", job_url(srv)),
            ("POST", job_url(srv)),
            ("DELETE", job_url(srv, "x")),
        ):
            resp = requests.request(method, url, json={"source": "epfl"}, timeout=10)
            assert resp.status_code == 401, (method, resp.text)
            assert "token" in resp.json()["error"]
            wrong = requests.request(
                method, url, headers={"Authorization": "Bearer nope"}, timeout=10
            )
            assert wrong.status_code == 401
        assert requests.get(job_url(srv), headers=AUTH, timeout=10).status_code == 200
        # reading the catalog needs no token
        assert requests.get(f"{srv.url}/api/records", timeout=10).status_code == 200


def test_off_loopback_without_a_token_refuses_to_start(
    job_root: Path, epfl_replica: EPFLReplica, make_settings: Any
) -> None:
    settings = make_settings(job_root, epfl_replica, host="0.0.0.0")
    with pytest.raises(ConfigError, match="token"):
        create_app(settings)
    create_app(
        make_settings(job_root, epfl_replica, host="0.0.0.0", token=TOKEN)
    ).state.jobs.shutdown()


def test_job_survives_its_client_disconnecting(
    job_root: Path, epfl_replica: EPFLReplica, make_settings: Any
) -> None:
    import json
    import socket

    settings = make_settings(job_root, epfl_replica)
    with ApiServer(settings) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        body = json.dumps({"source": "epfl", "ids": ["testing"]}).encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        # closed without reading the answer: the job runs on in the server
        items = wait_for(
            lambda: {"items": requests.get(job_url(srv), timeout=10).json()["items"]},
            lambda s: bool(s["items"]) and s["items"][0]["status"] not in ("queued", "running"),
        )["items"]
        assert [(j["status"], j["ids"]) for j in items] == [("complete", ["testing"])]
