"""Safe local names and the retry policy, without servers."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from emingest.errors import RemoteFormatError, SourceError, TransientSourceError
from emingest.transports import (
    RetryPolicy,
    local_path,
    name_from_url,
    parse_retry_after,
    retry_call,
    safe_name,
    safe_relative_path,
)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "a\\b", "nul\x00", "bell\x07", "tab\tname", "C:evil", "x" * 300],
)
def test_unsafe_component(name):
    with pytest.raises(RemoteFormatError):
        safe_name(name)


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a/./b", "\\\\srv\\x"])
def test_unsafe_relative_path(name):
    with pytest.raises(RemoteFormatError):
        safe_relative_path(name)


def test_safe_paths(tmp_path: Path):
    assert safe_name("Figure_S3F+1F_x.tif") == "Figure_S3F+1F_x.tif"
    assert safe_relative_path("a//b/c.tif") == PurePosixPath("a/b/c.tif")
    assert local_path(tmp_path, "a/b.tif") == tmp_path / "a" / "b.tif"
    assert name_from_url("https://h/x/%20Folder/vol%20a.tif?x=1") == "vol a.tif"
    with pytest.raises(RemoteFormatError):
        name_from_url("https://h/x/..%2F..%2Fy")
    with pytest.raises(RemoteFormatError):
        name_from_url("https://h/")


def test_local_path_refuses_symlink_escape(tmp_path: Path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(RemoteFormatError, match="outside"):
        local_path(tmp_path / "root", "link/x.bin")


def test_retry_after_parsing():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_delay_backoff_and_retry_after():
    p = RetryPolicy(attempts=5, initial_s=1.0, max_s=8.0, multiplier=2.0, jitter=0.5)
    for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        assert full * 0.5 <= p.delay(attempt) <= full
    assert p.delay(1, retry_after=30.0) == 30.0
    assert RetryPolicy(max_retry_after_s=5.0).delay(1, retry_after=1000.0) == 5.0


def test_retry_call_retries_transient_only():
    calls = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientSourceError("503", retry_after=0.25)
        return "ok"

    policy = RetryPolicy(attempts=4, initial_s=0.01, jitter=0.0)
    assert retry_call(flaky, policy, what="t", sleep=waits.append) == "ok"
    assert waits == [0.25, 0.25]

    def broken() -> None:
        calls.append(1)
        raise SourceError("403")

    calls.clear()
    with pytest.raises(SourceError):
        retry_call(broken, policy, what="t", sleep=waits.append)
    assert len(calls) == 1

    def always() -> None:
        raise TransientSourceError("reset")

    with pytest.raises(TransientSourceError, match="gave up after 4 attempts"):
        retry_call(always, policy, what="t", sleep=lambda s: None)
