"""join_below / check_below: a path from an archive's answer never leaves the archive's base."""

from __future__ import annotations

import pytest

from emingest.errors import RemoteFormatError
from emingest.transports.urls import check_below, join_below, relative_below

BASE = "https://ftp.example.org/empiar/world_availability"


@pytest.mark.parametrize(
    ("rel", "url"),
    [
        ("11759/data", f"{BASE}/11759/data"),
        ("11759/data/", f"{BASE}/11759/data/"),
        ("a b/c#1.tif", f"{BASE}/a%20b/c%231.tif"),
        ("./a//b", f"{BASE}/a/b"),
        ("", BASE),
        ("100%.tif", f"{BASE}/100%25.tif"),
    ],
)
def test_paths_inside_are_joined_and_encoded(rel: str, url: str) -> None:
    assert join_below(BASE, rel) == url


@pytest.mark.parametrize(
    "rel",
    [
        "../../../../../../tmp/x",
        "data/../../11760",
        "..",
        "%2e%2e/x",
        "%2E%2E/%2e%2e/etc/passwd",
        "%252e%252e/x",  # decoded twice by a proxy
        "a%2fb",  # an encoded slash inside one name
        "a%2F..%2Fb",
        "a%5c..%5cb",  # encoded backslashes
        "a\\b",
        "/etc/passwd",
        "//evil.example/x",
        "https://evil.example/x",
        "ftp://evil.example/x",
        "a\x00b",
        "a\nb",
    ],
)
def test_paths_that_could_leave_are_refused(rel: str) -> None:
    with pytest.raises(RemoteFormatError, match="No request was sent"):
        join_below(BASE, rel)
    with pytest.raises(RemoteFormatError):
        relative_below(BASE, rel)


@pytest.mark.parametrize(
    "url",
    [
        "https://ftp.example.org/empiar/world_availability_other/x",
        "https://ftp.example.org/empiar/x",
        "https://ftp.example.org/empiar/world_availability/../x",
        "https://ftp.example.org/empiar/world_availability/%2e%2e/x",
        "http://ftp.example.org/empiar/world_availability/x",
        "https://ftp.example.org:8443/empiar/world_availability/x",
        "https://evil.example/empiar/world_availability/x",
    ],
)
def test_whole_urls_outside_are_refused(url: str) -> None:
    with pytest.raises(RemoteFormatError):
        check_below(BASE, url)


def test_whole_urls_inside_pass() -> None:
    url = f"{BASE}/11759/data/a.dm3"
    assert check_below(BASE, url) == url
    assert check_below(BASE + "/", BASE + "/") == BASE + "/"
