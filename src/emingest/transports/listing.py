"""Folder listings in one shape over HTTP(S) autoindex pages and FTP (``MLSD``, ``NLST``).

Archives that publish plain file trees (EBI's FTP and its HTTPS mirror) have no listing API:
over HTTP a folder is an Apache/nginx autoindex page, over FTP a ``MLSD`` or ``NLST`` answer.
Names are returned raw: check them with :mod:`emingest.transports.names` before using them as
local paths.
"""

from __future__ import annotations

import urllib.parse
from html.parser import HTMLParser

from emingest.errors import EntryNotFoundError
from emingest.transports.ftp import FtpTransport, RemoteEntry
from emingest.transports.http import HttpTransport


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def parse_autoindex(html: str) -> list[str]:
    """Entries of an autoindex page (folders end in ``/``), without the sort links, ``../``,
    absolute links and links off the page's folder."""
    parser = _Hrefs()
    parser.feed(html)
    out = []
    for href in parser.hrefs:
        if href.startswith(("?", "/", "#")) or "://" in href or href in ("../", "./"):
            continue
        name = urllib.parse.unquote(href.split("?", 1)[0])
        if name and name.rstrip("/") and "/" not in name.rstrip("/") and name not in out:
            out.append(name)
    return out


def is_ftp(url: str) -> bool:
    return url.lower().startswith("ftp://")


def list_dir(http: HttpTransport, ftp: FtpTransport, url: str) -> list[RemoteEntry]:
    """The entries of the folder at ``url`` (ending in ``/``), ``is_dir`` always set."""
    if is_ftp(url):
        # NLST says nothing of types: there, folders are taken to be the names without a dot
        return [
            RemoteEntry(e.name, e.is_dir if e.is_dir is not None else "." not in e.name, e.size)
            for e in ftp.list_dir(url)
        ]
    page = http.get_bytes(url).decode("utf-8", "replace")
    return [RemoteEntry(n.rstrip("/"), n.endswith("/")) for n in parse_autoindex(page)]


def remote_size(http: HttpTransport, ftp: FtpTransport, url: str) -> int | None:
    """The size of a file (HEAD / FTP ``SIZE``); None when it does not exist or the server
    does not say."""
    try:
        return ftp.size(url) if is_ftp(url) else http.head(url).size
    except EntryNotFoundError:
        return None


__all__ = ["is_ftp", "list_dir", "parse_autoindex", "remote_size"]
