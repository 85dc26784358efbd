"""Loopback servers for the transport tests: a file tree over HTTP and over anonymous FTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emingest.testing.ftp import FTPReplica
from emingest.testing.http import HTTPReplica, RequestContext
from emingest.transports import TransportSettings

BLOB_BYTES = (1 << 20) + 12345  # a bit over 1 MiB: several segments and chunks
HOSTILE_NAME = "bad\x07name.bin"


def _blob() -> bytes:
    return np.random.default_rng(7).integers(0, 256, BLOB_BYTES, dtype=np.uint8).tobytes()


@pytest.fixture(scope="session")
def blob() -> bytes:
    return _blob()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> Path:
    root = tmp_path_factory.mktemp("tree")
    files = root / "pub" / "files"
    files.mkdir(parents=True)
    (files / "blob.bin").write_bytes(blob)
    (files / "small.txt").write_bytes(b"hello, EM\n")
    (files / HOSTILE_NAME).write_bytes(b"never written locally")
    (files / "sub").mkdir()
    return root


class FilesReplica(HTTPReplica):
    """``/pub/...`` as a static tree, plus ``/nolength/blob.bin`` streamed without a length."""

    def __init__(self, root: Path, blob: bytes) -> None:
        super().__init__()
        self.blob = blob
        self.serve_tree("/pub", root / "pub")
        self.route("GET", r"/nolength/blob\.bin", self._no_length)

    def _no_length(self, ctx: RequestContext) -> None:
        h = ctx.handler
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(self.blob)
        h.close_connection = True


@pytest.fixture(scope="module")
def http_server(tree: Path, blob: bytes) -> Iterator[FilesReplica]:
    with FilesReplica(tree, blob) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def ftp_server(tree: Path) -> Iterator[FTPReplica]:
    with FTPReplica(tree) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    servers = [
        request.getfixturevalue(name)
        for name in ("http_server", "ftp_server")
        if name in request.fixturenames
    ]
    for s in servers:
        s.faults.clear()
        s.faults.stall_s = 2.0
        s.faults.retry_after_s = 0.2
        if hasattr(s, "request_log"):
            s.request_log.clear()
    yield
    for s in servers:
        s.faults.clear()


@pytest.fixture
def fast() -> TransportSettings:
    """Short timeouts and tiny backoffs; one stream unless a test asks for segments."""
    return TransportSettings(
        connect_timeout_s=2.0,
        read_timeout_s=5.0,
        stall_timeout_s=0.5,
        attempts=5,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        backoff_jitter=0.0,
        parallel_segments=False,
        chunk_bytes=64 * 1024,
        trust_env=False,
    )
