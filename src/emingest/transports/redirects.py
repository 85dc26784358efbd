"""Redirects stay inside the archive: a requests session that checks every hop before it is sent.

requests follows redirects by itself (GET, Range GETs and HEAD alike). :class:`ArchiveSession`
refuses, before requesting it, a redirect whose target is on another scheme, host or port than
the URL first requested, except an upgrade from http to https on the same host (to its default
port or the same port); ``TransportSettings.redirect_hosts`` lists the extra hosts (``host``:
its scheme's default port, or ``host:port``) an archive may redirect to, such as its mirrors.
The number of redirects is capped by ``TransportSettings.max_redirects``. A refused redirect is
a :class:`~emingest.errors.RemoteFormatError` naming both URLs; it is never retried.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

import requests

from emingest.errors import RemoteFormatError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, lower case, the port filled in for http(s)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def _host_entry(entry: str) -> tuple[str, int | None]:
    """``host`` or ``host:port`` (``[v6]:port`` too) of ``redirect_hosts``; no port: None."""
    parts = urllib.parse.urlsplit("//" + entry.strip())
    return (parts.hostname or "").lower(), parts.port


def check_redirect(url: str, target: str, extra_hosts: Iterable[str] = ()) -> None:
    """Raise :class:`RemoteFormatError` unless a redirect from ``url`` (the URL first requested)
    to ``target`` stays on ``url``'s scheme, host and port, upgrades http to https on the same
    host, or goes to one of ``extra_hosts`` over http(s)."""
    scheme, host, port = _origin(url)
    t_scheme, t_host, t_port = _origin(target)
    if (t_scheme, t_host, t_port) == (scheme, host, port):
        return
    if scheme == "http" and t_scheme == "https" and t_host == host and t_port in (443, port):
        return
    if t_scheme in _DEFAULT_PORTS:
        for entry in extra_hosts:
            e_host, e_port = _host_entry(entry)
            if e_host == t_host and (e_port or _DEFAULT_PORTS[t_scheme]) == t_port:
                return
    raise RemoteFormatError(
        f"{url}: refused a redirect to {target}: it leaves the archive ({scheme}://{host}:{port}); "
        "no request was sent there. If that host is a mirror of the archive, add it to the "
        "source's transport.redirect_hosts setting"
    )


class ArchiveSession(requests.Session):
    """A requests session whose redirects stay inside the archive (see the module docstring)."""

    def __init__(self, *, redirect_hosts: Iterable[str] = (), max_redirects: int = 5) -> None:
        super().__init__()
        self.redirect_hosts = tuple(redirect_hosts)
        self.max_redirects = max_redirects

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        # requests calls this once per redirect hop, with the hop's resolved target, before
        # sending it; the first response of the chain holds the URL first requested.
        first = response.history[0] if response.history else response
        check_redirect(str(first.request.url), str(prepared_request.url), self.redirect_hosts)
        super().rebuild_auth(prepared_request, response)


__all__ = ["ArchiveSession", "check_redirect"]
