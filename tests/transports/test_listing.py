"""One listing shape over HTTP autoindex pages and FTP, against the loopback servers."""

from __future__ import annotations

import pytest

from emingest.transports import FtpTransport, HttpTransport
from emingest.transports.listing import is_ftp, list_dir, parse_autoindex, remote_size

from .conftest import HOSTILE_NAME

APACHE = """<html><body><h1>Index of /empiar/world_availability/11759/data</h1>
<table><tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=S;O=A">Size</a></th></tr>
<tr><td><a href="/empiar/world_availability/11759/">Parent Directory</a></td></tr>
<tr><td><a href="../">..</a></td></tr>
<tr><td><a href="F57-8_slice_0000.dm3">F57-8_slice_0000.dm3</a></td><td>57M</td></tr>
<tr><td><a href="with%20space.tif">with space.tif</a></td></tr>
<tr><td><a href="sub/">sub/</a></td></tr>
<tr><td><a href="https://elsewhere.example/x.dm3">elsewhere</a></td></tr>
<tr><td><a href="#top">top</a><a href="sub/">again</a></td></tr>
</table></body></html>"""


def test_parse_autoindex_keeps_the_folder_entries_only() -> None:
    assert parse_autoindex(APACHE) == ["F57-8_slice_0000.dm3", "with space.tif", "sub/"]


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_both_protocols_list_the_same_folder(scheme, http_server, ftp_server, fast) -> None:
    base = http_server.url if scheme == "http" else ftp_server.url
    entries = {
        e.name: e for e in list_dir(HttpTransport(fast), FtpTransport(fast), base + "/pub/files/")
    }
    assert set(entries) == {"blob.bin", "small.txt", "sub", HOSTILE_NAME}
    assert entries["sub"].is_dir is True and entries["blob.bin"].is_dir is False


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_remote_size(scheme, http_server, ftp_server, fast, blob) -> None:
    base = http_server.url if scheme == "http" else ftp_server.url
    http, ftp = HttpTransport(fast), FtpTransport(fast)
    assert remote_size(http, ftp, base + "/pub/files/blob.bin") == len(blob)
    assert remote_size(http, ftp, base + "/pub/files/missing.bin") is None


def test_is_ftp() -> None:
    assert is_ftp("FTP://ftp.ebi.ac.uk/x") and not is_ftp("https://ftp.ebi.ac.uk/x")
