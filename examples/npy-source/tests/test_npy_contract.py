"""The plug-in passes emingest's shipped source contract (run with the plug-in installed)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from emingest.config import load_settings
from emingest.sources.base import Source
from emingest.testing.contract import Request, SourceContractTests
from emingest_npy import NpySource


@pytest.fixture(scope="module")
def folder_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("npy")
    np.save(folder / "cells.npy", np.arange(6 * 10 * 12, dtype=">u2").reshape(6, 10, 12))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


class TestNpySource(SourceContractTests):
    @pytest.fixture
    def source(self, tmp_path: Path, folder_url: str) -> Iterator[Source]:
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(tmp_path)},
                "sources": {"npy": {"base_url": folder_url}},
            },
        )
        source = NpySource(settings)
        yield source
        source.close()

    @pytest.fixture
    def request_ok(self) -> Request:
        return ["cells"], {}

    @pytest.fixture
    def request_missing(self) -> Request:
        return ["no-such-file"], {}
