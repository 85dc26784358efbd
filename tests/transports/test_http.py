"""HTTP downloads against a loopback server with faults injected at the server."""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import sys
import time

import pytest

from emingest.errors import EntryNotFoundError, RemoteFormatError, TransientSourceError
from emingest.transports import Downloader, HttpTransport, TransportSettings


def _gets(server, path: str) -> list[str | None]:
    """The Range header of every GET of ``path`` (None: no Range)."""
    return [rng for method, p, rng in server.request_log if method == "GET" and p == path]


def _check(result, blob: bytes) -> None:
    assert result.path.read_bytes() == blob
    assert result.size_bytes == len(blob)
    assert result.sha256 == hashlib.sha256(blob).hexdigest()
    assert not list(result.path.parent.glob(".*.part*"))


URL_PATH = "/pub/files/blob.bin"


def test_download_verifies_and_caches(http_server, fast, tmp_path, blob):
    with Downloader(fast, tmp_path) as dl:
        first = dl.fetch(http_server.url + URL_PATH)
        _check(first, blob)
        assert first.fetched_bytes == len(blob) and not first.from_cache
        again = dl.fetch(http_server.url + URL_PATH)
    assert again.from_cache and again.sha256 == first.sha256
    assert len(_gets(http_server, URL_PATH)) == 1
    assert first.as_file_digest() == {
        "name": "blob.bin",
        "url": http_server.url + URL_PATH,
        "size_bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }


def test_parallel_segments(http_server, fast, tmp_path, blob):
    settings = fast.model_copy(
        update={"parallel_segments": True, "parallel_min_bytes": 1, "segment_bytes": 256 * 1024}
    )
    with HttpTransport(settings) as http:
        result = http.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    ranges = _gets(http_server, URL_PATH)
    assert len(ranges) == 5 and all(r and r.startswith("bytes=") for r in ranges)


def test_parallel_segments_survive_resets(http_server, fast, tmp_path, blob):
    settings = fast.model_copy(
        update={"parallel_segments": True, "parallel_min_bytes": 1, "segment_bytes": 256 * 1024}
    )
    http_server.faults.reset_every = 3
    with HttpTransport(settings) as http:
        result = http.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    assert len(_gets(http_server, URL_PATH)) > 5


def test_range_off_falls_back_to_one_stream(http_server, fast, tmp_path, blob):
    settings = fast.model_copy(
        update={"parallel_segments": True, "parallel_min_bytes": 1, "segment_bytes": 256 * 1024}
    )
    http_server.faults.range_support = False
    with HttpTransport(settings) as http:
        result = http.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    assert _gets(http_server, URL_PATH) == [None]


def test_range_off_truncated_body_is_fetched_again_whole(http_server, fast, tmp_path, blob):
    http_server.faults.range_support = False
    http_server.faults.next_request()  # request 1 is this; the GET is request 2 (truncated)
    http_server.faults.truncate_every = 2
    with HttpTransport(fast) as http:
        result = http.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    assert _gets(http_server, URL_PATH) == [None, None]
    assert result.fetched_bytes > len(blob)  # the start was fetched twice: no Range


def test_missing_content_length_streams(http_server, fast, tmp_path, blob):
    settings = fast.model_copy(update={"parallel_segments": True, "parallel_min_bytes": 1})
    with HttpTransport(settings) as http:
        result = http.download(http_server.url + "/nolength/blob.bin", tmp_path / "blob.bin")
    _check(result, blob)


def test_stall_is_aborted_and_resumed(http_server, fast, tmp_path, blob):
    http_server.faults.stall_every = 2
    http_server.faults.next_request()  # the download's GET is request 2: it stalls
    with HttpTransport(fast) as http:
        result = http.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    ranges = _gets(http_server, URL_PATH)
    assert len(ranges) == 2 and ranges[0] is None
    assert ranges[1] is not None and re.fullmatch(r"bytes=\d+-", ranges[1])
    assert result.fetched_bytes == len(blob)  # nothing fetched twice


def test_reset_mid_body_then_success(http_server, fast, tmp_path, blob):
    http_server.faults.reset_every = 2
    http_server.faults.next_request()
    with HttpTransport(fast) as http:
        result = http.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    assert len(_gets(http_server, URL_PATH)) == 2


def test_truncated_body_detected_and_resumed(http_server, fast, tmp_path, blob):
    http_server.faults.truncate_every = 2
    http_server.faults.next_request()
    with HttpTransport(fast) as http:
        result = http.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    ranges = _gets(http_server, URL_PATH)
    assert ranges[0] is None and ranges[1] is not None
    start = int(re.fullmatch(r"bytes=(\d+)-", ranges[1]).group(1))
    assert 0 < start <= len(blob) // 2  # resumed: what was written is not fetched again


def test_503_with_retry_after_is_honoured(http_server, fast, tmp_path, blob, caplog):
    http_server.faults.fail_first = 1
    http_server.faults.status_code = 503
    http_server.faults.retry_after_s = 0.3
    with caplog.at_level(logging.WARNING, "emingest.transports.retry"), HttpTransport(fast) as h:
        result = h.download(http_server.url + URL_PATH, tmp_path / "blob.bin")
    _check(result, blob)
    waits = [float(m) for m in re.findall(r"in ([\d.]+) s", caplog.text)]
    assert waits and waits[0] >= 0.3  # backoff alone would be 0.01 s


def test_429_gives_up_after_the_attempts(http_server, fast, tmp_path):
    http_server.faults.status_every = 1
    http_server.faults.status_code = 429
    http_server.faults.retry_after_s = 0.01
    with HttpTransport(fast) as http, pytest.raises(TransientSourceError, match="gave up"):
        http.get_bytes(http_server.url + "/pub/files/small.txt")
    assert len(_gets(http_server, "/pub/files/small.txt")) == fast.attempts


def test_404_is_entry_not_found(http_server, fast, tmp_path):
    with Downloader(fast, tmp_path) as dl, pytest.raises(EntryNotFoundError, match="404"):
        dl.fetch(http_server.url + "/pub/files/missing.bin")
    left = sorted(p.name for p in tmp_path.rglob("*") if "missing" in p.name)
    assert "missing.bin" not in left and ".missing.bin.part" not in left


def test_404_leaves_nothing_in_the_cache(http_server, fast, tmp_path):
    with Downloader(fast, tmp_path) as dl, pytest.raises(EntryNotFoundError):
        dl.fetch(http_server.url + "/pub/files/missing.bin")
    # only the download's lock file stays (removing a flock file races with its next user)
    left = [p.name for p in tmp_path.rglob("*") if "missing" in p.name]
    assert left == [".missing.bin.lock"]


@pytest.mark.parametrize(
    ("url_path", "name"),
    [
        ("/pub/files/..%2F..%2Fescape.bin", None),
        ("/pub/files/bad%07name.bin", None),
        ("/pub/files/x%00.bin", None),
        ("/pub/files/blob.bin", "../escape.bin"),
        ("/pub/files/blob.bin", "/tmp/escape.bin"),
        ("/pub/files/blob.bin", "sub/../../escape.bin"),
    ],
)
def test_hostile_names_are_refused(http_server, fast, tmp_path, url_path, name):
    cache = tmp_path / "cache"
    with Downloader(fast, cache) as dl, pytest.raises(RemoteFormatError, match="unsafe"):
        dl.fetch(http_server.url + url_path, name)
    assert not list(tmp_path.rglob("*escape*"))
    assert _gets(http_server, url_path) == []  # refused before any request


def test_killed_download_resumes_from_partial(http_server, fast, tmp_path, blob):
    """A process killed mid-download leaves .blob.bin.part; the next run fetches the rest."""
    url = http_server.url + URL_PATH
    final = tmp_path / "blob.bin"
    part = tmp_path / ".blob.bin.part"
    http_server.faults.stall_every = 1
    http_server.faults.stall_s = 30.0  # longer than the test: the child is stuck at the cut
    script = (
        "import sys; from pathlib import Path\n"
        "from emingest.transports import HttpTransport, TransportSettings\n"
        "s = TransportSettings(stall_timeout_s=30, chunk_bytes=16384, trust_env=False,"
        " parallel_segments=False)\n"
        "HttpTransport(s).download(sys.argv[1], Path(sys.argv[2]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, url, str(final)])
    half = len(blob) // 2  # the replica stalls after half the body...
    cut = half - half % 16384  # ...of which the child writes whole 16 KiB chunks
    try:
        # the replica says when it has sent the half and stalls; then the child's partial file
        # reaches exactly that size (its own signal), and it is killed there
        assert http_server.faults.stalling.wait(20), "the download never started"
        deadline = time.monotonic() + 20
        while not part.exists() or part.stat().st_size < cut:
            assert time.monotonic() < deadline, "the child never wrote what it received"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    kept = part.stat().st_size
    assert kept == cut
    http_server.faults.clear()
    http_server.request_log.clear()
    with HttpTransport(fast) as http:
        result = http.download(url, final)
    _check(result, blob)
    assert result.resumed_from == kept
    assert result.fetched_bytes == len(blob) - kept < len(blob)
    assert _gets(http_server, URL_PATH) == [f"bytes={kept}-"]


def test_get_json_and_errors(http_server, fast):
    with HttpTransport(fast) as http:
        with pytest.raises(RemoteFormatError, match="not JSON"):
            http.get_json(http_server.url + "/pub/files/small.txt")
        info = http.head(http_server.url + URL_PATH)
    assert info.accept_ranges and info.size is not None and info.size > 1 << 20


def test_settings_from_dict():
    s = TransportSettings.model_validate({"per_host_connections": 8, "stall_timeout_s": 5})
    assert s.per_host_connections == 8 and s.retry_policy().attempts == s.attempts
    with pytest.raises(ValueError):
        TransportSettings.model_validate({"per_host_connections": 0})
    with pytest.raises(ValueError):
        TransportSettings.model_validate({"no_such_key": 1})


def test_partial_of_another_url_is_discarded(http_server, fast, tmp_path, blob):
    final = tmp_path / "blob.bin"
    (tmp_path / ".blob.bin.part").write_bytes(b"x" * 1000)
    (tmp_path / ".blob.bin.part.json").write_text('{"url": "http://elsewhere/blob.bin"}')
    with HttpTransport(fast) as http:
        result = http.download(http_server.url + URL_PATH, final)
    _check(result, blob)
    assert result.resumed_from == 0
