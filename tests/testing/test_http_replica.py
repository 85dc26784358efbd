"""Each fault switch of the base servers, seen by plain clients (requests, http.client, ftplib).

A small tree is served over HTTP (``HTTPReplica.serve_tree``) and FTP (``FTPReplica``) with one
shared :class:`Faults`. Stalls are short (``stall_s`` 2 s) and met with shorter client
timeouts, so nothing here waits long or measures time.
"""

from __future__ import annotations

import ftplib
import http.client
import io
import os
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pyftpdlib  # noqa: F401  (a broken install fails here, never skips)
import pytest
import requests

from emingest.testing.ftp import FTPReplica
from emingest.testing.http import HTTPReplica

SIZE = 300_000  # several 64 KiB chunks
TIMEOUT = 10


class Servers:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.http = HTTPReplica()
        self.http.serve_tree("/files", root)
        self.http.route("GET", r"/api/ping", lambda ctx: ctx.send_json({"pong": True}))
        self.faults = self.http.faults
        self.ftp = FTPReplica(root, self.faults)
        self.payload = (root / "data" / "blob.bin").read_bytes()

    @property
    def blob_url(self) -> str:
        return f"{self.http.url}/files/data/blob.bin"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("tree")
    (root / "data").mkdir()
    (root / "data" / "blob.bin").write_bytes(os.urandom(SIZE))
    (root / "data" / "listed.txt").write_text("listed\n")
    (root / "data" / "hidden.txt").write_text("hidden\n")
    s = Servers(root)
    s.faults.stall_s = 2.0
    s.http.start()
    s.ftp.start()
    try:
        yield s
    finally:
        s.ftp.stop()
        s.http.stop()


@pytest.fixture(autouse=True)
def clear_faults(servers: Servers) -> Iterator[None]:
    yield
    # clear() leaves the fault parameters; put those back too
    servers.faults.clear()
    servers.faults.stall_s = 2.0
    servers.faults.status_code = 503
    servers.faults.retry_after_s = 1.0


@pytest.fixture
def ftp(servers: Servers) -> Iterator[ftplib.FTP]:
    client = ftplib.FTP()
    client.connect("127.0.0.1", servers.ftp.port, timeout=TIMEOUT)
    client.login()
    client.voidcmd("TYPE I")
    try:
        yield client
    finally:
        client.close()


def test_clean_transfer(servers: Servers, session: requests.Session) -> None:
    r = session.get(servers.blob_url, timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == servers.payload


# -- HTTP ----------------------------------------------------------------------------------------


def test_stall_trips_a_read_timeout(servers: Servers, session: requests.Session) -> None:
    servers.faults.stall_every = 1
    with pytest.raises(requests.exceptions.ConnectionError):  # ReadTimeout mid-body
        session.get(servers.blob_url, timeout=(TIMEOUT, 0.5)).content  # noqa: B018


@pytest.mark.parametrize("status", [503, 429])
def test_status_fault_with_retry_after(
    servers: Servers, session: requests.Session, status: int
) -> None:
    servers.faults.fail_first = 1
    servers.faults.status_code = status
    servers.faults.retry_after_s = 3
    first = session.get(servers.blob_url, timeout=TIMEOUT)
    assert first.status_code == status and first.headers["Retry-After"] == "3"
    second = session.get(servers.blob_url, timeout=TIMEOUT)
    assert second.status_code == 200 and second.content == servers.payload


def test_every_nth_request_fails(servers: Servers, session: requests.Session) -> None:
    servers.faults.status_every = 2
    codes = [
        session.get(f"{servers.http.url}/api/ping", timeout=TIMEOUT).status_code for _ in range(4)
    ]
    assert codes == [200, 503, 200, 503]


def test_reset_mid_body(servers: Servers, session: requests.Session) -> None:
    servers.faults.reset_every = 1
    with pytest.raises(requests.exceptions.RequestException, match="reset"):
        session.get(servers.blob_url, timeout=TIMEOUT).content  # noqa: B018


def test_truncated_body_is_shorter_than_its_length(servers: Servers) -> None:
    servers.faults.truncate_every = 1
    conn = http.client.HTTPConnection("127.0.0.1", servers.http.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/files/data/blob.bin")
        resp = conn.getresponse()
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == SIZE
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        assert 0 < len(info.value.partial) < SIZE
        assert info.value.partial == servers.payload[: len(info.value.partial)]
    finally:
        conn.close()


def test_faults_apply_to_ranges_too(servers: Servers, session: requests.Session) -> None:
    servers.faults.reset_every = 1
    with pytest.raises(requests.exceptions.RequestException, match="reset"):
        r = session.get(servers.blob_url, headers={"Range": "bytes=1000-200999"}, timeout=TIMEOUT)
        assert r.status_code == 206
        r.content  # noqa: B018


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def test_omit_from_listing_over_http_autoindex(servers: Servers, session: requests.Session) -> None:
    def listing() -> list[str]:
        parser = _Links()
        parser.feed(session.get(f"{servers.http.url}/files/data/", timeout=TIMEOUT).text)
        return [h for h in parser.hrefs if not h.startswith("?") and h != "../"]

    assert sorted(listing()) == ["blob.bin", "hidden.txt", "listed.txt"]
    servers.faults.omit_from_listing = {"hidden.txt"}
    assert sorted(listing()) == ["blob.bin", "listed.txt"]
    # left out of the listing, still served
    assert session.get(f"{servers.http.url}/files/data/hidden.txt", timeout=TIMEOUT).ok


# -- FTP -----------------------------------------------------------------------------------------


def test_omit_from_listing_over_ftp_nlst(servers: Servers, ftp: ftplib.FTP) -> None:
    ftp.cwd("/data")
    assert sorted(ftp.nlst()) == ["blob.bin", "hidden.txt", "listed.txt"]
    servers.faults.omit_from_listing = {"hidden.txt"}
    assert sorted(ftp.nlst()) == ["blob.bin", "listed.txt"]


def test_ftp_retr_clean(servers: Servers, ftp: ftplib.FTP) -> None:
    buf = io.BytesIO()
    ftp.retrbinary("RETR /data/blob.bin", buf.write)
    assert buf.getvalue() == servers.payload


def test_ftp_retr_stall(servers: Servers, ftp: ftplib.FTP) -> None:
    servers.faults.stall_every = 1
    ftp.timeout = 0.5  # the data connection's timeout (the control one keeps its own)
    buf = io.BytesIO()
    with pytest.raises((TimeoutError, socket.timeout)):
        ftp.retrbinary("RETR /data/blob.bin", buf.write)
    assert 0 < len(buf.getvalue()) < SIZE


def test_ftp_retr_reset(servers: Servers, ftp: ftplib.FTP) -> None:
    servers.faults.reset_every = 1
    buf = io.BytesIO()
    with pytest.raises((ConnectionResetError, ftplib.error_temp, EOFError)):
        ftp.retrbinary("RETR /data/blob.bin", buf.write)
    assert len(buf.getvalue()) < SIZE


def test_ftp_retr_truncate(servers: Servers, ftp: ftplib.FTP) -> None:
    servers.faults.truncate_every = 1
    buf = io.BytesIO()
    reply = ftp.retrbinary("RETR /data/blob.bin", buf.write)
    assert reply.startswith("226")  # the server believes all went well...
    assert 0 < len(buf.getvalue()) < SIZE == ftp.size("/data/blob.bin")  # ...but it is short
    assert buf.getvalue() == servers.payload[: len(buf.getvalue())]


def test_ftp_faults_count_only_retr(servers: Servers, ftp: ftplib.FTP) -> None:
    servers.faults.truncate_every = 2
    sizes = []
    for _ in range(4):
        ftp.nlst("/data")  # listings are not fault-eligible
        buf = io.BytesIO()
        ftp.retrbinary("RETR /data/blob.bin", buf.write)
        sizes.append(len(buf.getvalue()))
    assert [s == SIZE for s in sizes] == [True, False, True, False]
