"""FTP listings and downloads against the loopback pyftpdlib replica, faults at the server."""

from __future__ import annotations

import hashlib
import urllib.parse

import pytest
from pyftpdlib.handlers import FTPHandler

from emingest.errors import EntryNotFoundError, RemoteFormatError
from emingest.testing.ftp import FTPReplica
from emingest.transports import Downloader, FtpTransport, HttpTransport
from emingest.transports.listing import list_dir

URL_PATH = "/pub/files/blob.bin"
HOSTILE_NAME = "bad\x07name.bin"  # as in conftest.py


def _check(result, blob: bytes) -> None:
    assert result.path.read_bytes() == blob
    assert result.sha256 == hashlib.sha256(blob).hexdigest()
    assert result.size_bytes == len(blob)


def test_mlsd_listing(ftp_server, fast):
    entries = {e.name: e for e in FtpTransport(fast).list_dir(ftp_server.url + "/pub/files")}
    assert set(entries) == {"blob.bin", "small.txt", "sub", HOSTILE_NAME}
    assert entries["sub"].is_dir and not entries["blob.bin"].is_dir
    assert entries["small.txt"].size == 10


def test_download_and_size(ftp_server, fast, tmp_path, blob):
    ftp = FtpTransport(fast)
    assert ftp.size(ftp_server.url + URL_PATH) == len(blob)
    result = ftp.download(ftp_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    assert result.fetched_bytes == len(blob)


@pytest.mark.parametrize("fault", ["stall_every", "reset_every", "truncate_every"])
def test_broken_transfer_resumes_with_rest(ftp_server, fast, tmp_path, blob, fault):
    setattr(ftp_server.faults, fault, 2)
    ftp_server.faults.next_request()  # the download's RETR is number 2: it breaks halfway
    ftp_server.command_log.clear()
    result = FtpTransport(fast).download(ftp_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    retrs = [arg for cmd, arg in ftp_server.command_log if cmd == "RETR"]
    rests = [int(arg) for cmd, arg in ftp_server.command_log if cmd == "REST"]
    assert len(retrs) == 2, ftp_server.command_log  # the broken transfer and its resumption
    # The resumption asks for what was not kept: REST with the offset reached, nothing twice.
    [offset] = [r for r in rests if r > 0]
    assert result.resumed_from == 0  # resumed within this download, not from an old partial
    assert result.fetched_bytes == len(blob)
    half = len(blob) // 2  # the replica breaks the body off after half of it
    if fault == "reset_every":  # a reset may lose what was in flight, never more than sent
        assert 0 < offset <= half
    else:
        assert offset == half


def test_killed_transfer_resumes_from_partial(ftp_server, fast, tmp_path, blob):
    final = tmp_path / "blob.bin"
    kept = 300_000
    (tmp_path / ".blob.bin.part").write_bytes(blob[:kept])
    url = ftp_server.url + URL_PATH
    (tmp_path / ".blob.bin.part.json").write_text(f'{{"url": "{url}", "mode": "ftp"}}')
    ftp_server.command_log.clear()
    result = FtpTransport(fast).download(url, final)
    _check(result, blob)
    assert result.resumed_from == kept and result.fetched_bytes == len(blob) - kept
    assert ("REST", str(kept)) in ftp_server.command_log


def test_missing_file_is_entry_not_found(ftp_server, fast, tmp_path):
    with pytest.raises(EntryNotFoundError, match="550"):
        FtpTransport(fast).download(ftp_server.url + "/pub/files/nope.bin", tmp_path / "n")


def test_hostile_listed_name_is_refused(ftp_server, fast, tmp_path):
    ftp = FtpTransport(fast)
    listed = [e.name for e in ftp.list_dir(ftp_server.url + "/pub/files")]
    assert HOSTILE_NAME in listed
    url = ftp_server.url + "/pub/files/" + urllib.parse.quote(HOSTILE_NAME)
    with Downloader(fast, tmp_path) as dl:
        with pytest.raises(RemoteFormatError, match="control character"):
            dl.fetch(url)
        with pytest.raises(RemoteFormatError, match="unsafe"):
            dl.fetch(ftp_server.url + URL_PATH, "../../outside.bin")
    assert not any(tmp_path.rglob("*"))


class _NoMlsdReplica(FTPReplica):
    """A server without MLSD (502), as some old FTP servers."""

    def _handler_class(self) -> type[FTPHandler]:
        base = super()._handler_class()

        def ftp_MLSD(self, path):
            self.respond("502 Command not implemented.")

        return type("NoMlsdHandler", (base,), {"ftp_MLSD": ftp_MLSD})


def test_nlst_fallback(tree, fast):
    # Last in the module: stopping a pyftpdlib server closes the shared IOLoop's other
    # servers too (FTPReplica.stop -> close_all), so ftp_server must not be used after this.
    with _NoMlsdReplica(tree) as server:
        raw = {e.name: e for e in FtpTransport(fast).list_dir(server.url + "/pub/files")}
        guessed = {
            e.name: e
            for e in list_dir(HttpTransport(fast), FtpTransport(fast), server.url + "/pub/files/")
        }
    assert {"blob.bin", "small.txt", "sub"} <= set(raw)
    assert raw["sub"].is_dir is None  # NLST says nothing of types...
    # ...so the listing guesses: a name without a dot is a folder, one with a dot a file.
    assert guessed["sub"].is_dir is True
    assert guessed["blob.bin"].is_dir is False and guessed["small.txt"].is_dir is False
    # each listing asked MLSD, was refused, and fell back to NLST
    assert [c for c, _ in server.command_log if c in ("MLSD", "NLST")] == ["MLSD", "NLST"] * 2
