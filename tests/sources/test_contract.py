"""Every built-in source passes the shipped contract tests (emingest.testing.contract),
each against its loopback replica (local: a TIFF in a temporary folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from emingest.config import load_settings
from emingest.sources import create_source
from emingest.sources.base import Source
from emingest.testing.contract import Request, SourceContractTests
from emingest.testing.replicas import Replica, replica_classes


def _started(name: str, root: Path) -> Iterator[Replica]:
    replica = replica_classes()[name](root, 1)
    replica.start()
    try:
        yield replica
    finally:
        replica.stop()


def _source(name: str, tmp_path: Path, replica: Replica | None) -> Iterator[Source]:
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data")},
            "sources": {name: replica.source_settings()} if replica else {},
        },
    )
    source = create_source(name, settings)
    yield source
    source.close()


def _replica_fixture(name: str) -> Any:
    @pytest.fixture(scope="module")
    def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
        yield from _started(name, tmp_path_factory.mktemp(name))

    return replica


idr_replica = _replica_fixture("idr")
empiar_replica = _replica_fixture("empiar")
epfl_replica = _replica_fixture("epfl")
openorganelle_replica = _replica_fixture("openorganelle")
flyem_replica = _replica_fixture("flyem")


class TestLocal(SourceContractTests):
    @pytest.fixture
    def source(self, tmp_path: Path) -> Iterator[Source]:
        yield from _source("local", tmp_path, None)

    @pytest.fixture
    def request_ok(self, tmp_path: Path) -> Request:
        path = tmp_path / "v.tif"
        tifffile.imwrite(path, np.arange(5 * 9 * 7, dtype=np.uint16).reshape(5, 9, 7))
        return [str(path)], {}

    @pytest.fixture
    def request_missing(self, tmp_path: Path) -> Request:
        return [str(tmp_path / "missing.tif")], {}

    def test_preflight_reaches_the_archive(self, source: Source) -> None:
        check = source.preflight(timeout_s=1.0)
        assert check.ok and check.detail == "nothing to reach"


class TestIdr(SourceContractTests):
    @pytest.fixture
    def source(self, tmp_path: Path, idr_replica: Replica) -> Iterator[Source]:
        yield from _source("idr", tmp_path, idr_replica)

    @pytest.fixture
    def request_ok(self) -> Request:
        return ["9846137"], {}

    @pytest.fixture
    def request_missing(self) -> Request:
        return ["1"], {}


class TestEmpiar(SourceContractTests):
    @pytest.fixture
    def source(self, tmp_path: Path, empiar_replica: Replica) -> Iterator[Source]:
        yield from _source("empiar", tmp_path, empiar_replica)

    @pytest.fixture
    def request_ok(self) -> Request:
        return ["EMPIAR-11759"], {"max_files": 3}

    @pytest.fixture
    def request_missing(self) -> Request:
        return ["99999"], {}


class TestEpfl(SourceContractTests):
    @pytest.fixture
    def source(self, tmp_path: Path, epfl_replica: Replica) -> Iterator[Source]:
        yield from _source("epfl", tmp_path, epfl_replica)

    @pytest.fixture
    def request_ok(self) -> Request:
        return ["testing_groundtruth"], {}

    @pytest.fixture
    def request_missing(self) -> Request:
        return ["validation"], {}


class TestOpenOrganelle(SourceContractTests):
    @pytest.fixture
    def source(self, tmp_path: Path, openorganelle_replica: Replica) -> Iterator[Source]:
        yield from _source("openorganelle", tmp_path, openorganelle_replica)

    @pytest.fixture
    def request_ok(self, openorganelle_replica: Replica) -> Request:
        return [openorganelle_replica.server.dataset], {
            "source_levels": "1",
            "region": "0:20,0:40,0:50",
        }

    @pytest.fixture
    def request_missing(self) -> Request:
        return ["jrc_no-such-dataset"], {}


class TestFlyEM(SourceContractTests):
    @pytest.fixture
    def source(self, tmp_path: Path, flyem_replica: Replica) -> Iterator[Source]:
        yield from _source("flyem", tmp_path, flyem_replica)

    @pytest.fixture
    def request_ok(self) -> Request:
        return [], {"box": "10:30,20:60,30:70"}

    @pytest.fixture
    def request_missing(self) -> Any:
        pytest.skip("the hemibrain is one volume: no id can be missing")
