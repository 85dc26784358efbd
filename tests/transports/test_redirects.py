"""Redirects stay inside the archive: hops off the requested origin are refused before any
request reaches them, unless ``redirect_hosts`` lists the host; at most ``max_redirects``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emingest.errors import RemoteFormatError
from emingest.testing.http import HTTPReplica, RequestContext
from emingest.transports import HttpTransport, TransportSettings
from emingest.transports.redirects import check_redirect

from .conftest import FilesReplica


class RedirectingReplica(FilesReplica):
    """The file tree, plus ``/same/<rel>`` (a relative 302 to ``/pub/files/<rel>``),
    ``/away/<rel>`` (a 302 to ``<elsewhere>/pub/files/<rel>``) and ``/chain/<n>/<rel>``
    (n redirects, then ``/pub/files/<rel>``)."""

    def __init__(self, root: Path, blob: bytes) -> None:
        super().__init__(root, blob)
        self.elsewhere = ""
        self.route("GET", r"/same/(?P<rel>.+)", self._same)
        self.route("GET", r"/away/(?P<rel>.+)", self._away)
        self.route("GET", r"/chain/(?P<n>\d+)/(?P<rel>.+)", self._chain)

    @staticmethod
    def _redirect(ctx: RequestContext, location: str) -> None:
        ctx.send_bytes(b"", status=302, headers={"Location": location})

    def _same(self, ctx: RequestContext) -> None:
        self._redirect(ctx, "/pub/files/" + ctx.match.group("rel"))

    def _away(self, ctx: RequestContext) -> None:
        self._redirect(ctx, f"{self.elsewhere}/pub/files/{ctx.match.group('rel')}")

    def _chain(self, ctx: RequestContext) -> None:
        n, rel = int(ctx.match.group("n")), ctx.match.group("rel")
        self._redirect(ctx, f"/chain/{n - 1}/{rel}" if n > 0 else f"/pub/files/{rel}")


@pytest.fixture(scope="module")
def mirror(tree: Path, blob: bytes) -> Iterator[HTTPReplica]:
    """Another loopback server (another port) holding the same tree."""
    with FilesReplica(tree, blob) as server:
        yield server


@pytest.fixture(scope="module")
def origin(tree: Path, blob: bytes, mirror: HTTPReplica) -> Iterator[RedirectingReplica]:
    with RedirectingReplica(tree, blob) as server:
        server.elsewhere = mirror.url
        yield server


@pytest.fixture(autouse=True)
def _clean_logs(origin: RedirectingReplica, mirror: HTTPReplica) -> None:
    for server in (origin, mirror):
        server.faults.clear()
        server.request_log.clear()


def _segments(settings: TransportSettings, **more: object) -> TransportSettings:
    """HEAD, then parallel Range GETs: every request kind goes through the redirect."""
    update = {"parallel_segments": True, "parallel_min_bytes": 1, "segment_bytes": 256 * 1024}
    return settings.model_copy(update=update | more)


def test_redirect_to_another_port_is_refused_before_any_request(
    origin, mirror, fast, tmp_path, blob
):
    url = origin.url + "/away/blob.bin"
    for settings in (fast, _segments(fast)):
        origin.request_log.clear()
        with (
            HttpTransport(settings) as http,
            pytest.raises(RemoteFormatError, match="refused a redirect") as err,
        ):
            http.download(url, tmp_path / "blob.bin")
        assert url in str(err.value) and mirror.url + "/pub/files/blob.bin" in str(err.value)
        assert len(origin.request_log) == 1  # never retried
    with HttpTransport(fast) as http, pytest.raises(RemoteFormatError):
        http.get_bytes(origin.url + "/away/small.txt")
    assert mirror.request_log == []
    assert not (tmp_path / "blob.bin").exists()


@pytest.mark.parametrize("segments", [False, True])
def test_same_origin_redirect_is_followed(origin, fast, tmp_path, blob, segments):
    settings = _segments(fast) if segments else fast
    with HttpTransport(settings) as http:
        result = http.download(origin.url + "/same/blob.bin", tmp_path / "blob.bin")
        assert http.get_bytes(origin.url + "/same/small.txt") == b"hello, EM\n"
    assert result.path.read_bytes() == blob
    ranged = [r for m, p, r in origin.request_log if p == "/pub/files/blob.bin" and r]
    assert bool(ranged) == segments


@pytest.mark.parametrize("segments", [False, True])
def test_redirect_to_a_listed_host_is_followed(origin, mirror, fast, tmp_path, blob, segments):
    allowed = f"127.0.0.1:{mirror.port}"
    settings = fast.model_copy(update={"redirect_hosts": [allowed]})
    settings = _segments(settings) if segments else settings
    with HttpTransport(settings) as http:
        result = http.download(origin.url + "/away/blob.bin", tmp_path / "blob.bin")
    assert result.path.read_bytes() == blob
    assert result.url == origin.url + "/away/blob.bin"
    assert any(p == "/pub/files/blob.bin" for _, p, _ in mirror.request_log)


def test_redirects_beyond_the_cap_are_refused(origin, fast, tmp_path, blob):
    settings = fast.model_copy(update={"max_redirects": 3})
    with HttpTransport(settings) as http:
        assert http.get_bytes(origin.url + "/chain/2/small.txt") == b"hello, EM\n"  # 3 hops
        origin.request_log.clear()
        with pytest.raises(RemoteFormatError, match="too many redirects"):
            http.download(origin.url + "/chain/3/blob.bin", tmp_path / "blob.bin")
    assert len(origin.request_log) == 4  # the request and 3 hops; no retry, no 5th
    assert not any(p.startswith("/pub/") for _, p, _ in origin.request_log)


@pytest.mark.parametrize(
    ("url", "target", "extra", "ok"),
    [
        ("http://a.org/x", "http://a.org:80/y", (), True),
        ("http://a.org/x", "https://a.org/x", (), True),  # upgrade on the same host
        ("http://a.org:8080/x", "https://a.org:8080/x", (), True),
        ("https://a.org/x", "http://a.org/x", (), False),  # downgrade
        ("http://a.org/x", "https://a.org:8443/x", (), False),
        ("http://a.org/x", "http://A.ORG/x", (), True),
        ("http://a.org/x", "http://b.org/x", (), False),
        ("http://a.org/x", "http://a.org.evil/x", (), False),
        ("http://a.org/x", "ftp://a.org/x", (), False),
        ("http://a.org/x", "file:///etc/passwd", (), False),
        ("http://a.org/x", "http://b.org/x", ("b.org",), True),
        ("http://a.org/x", "https://b.org/x", ("B.org",), True),
        ("http://a.org/x", "http://b.org:81/x", ("b.org",), False),
        ("http://a.org/x", "http://b.org:81/x", ("b.org:81",), True),
        ("http://a.org/x", "ftp://b.org/x", ("b.org",), False),
    ],
)
def test_check_redirect(url, target, extra, ok):
    if ok:
        check_redirect(url, target, extra)
    else:
        with pytest.raises(RemoteFormatError, match="refused a redirect"):
            check_redirect(url, target, extra)
