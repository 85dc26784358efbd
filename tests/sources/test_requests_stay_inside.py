"""Requests stay inside the archive: a hostile answer never makes us ask outside the base URL.

Each test gives a replica a hostile path in its answer and checks the replica's own request
log: no request left the configured base, and the error says why.
"""

from __future__ import annotations

import copy
import posixpath
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyftpdlib")

from emingest.config import load_settings
from emingest.errors import RemoteFormatError
from emingest.sources.empiar import EmpiarSource
from emingest.testing.empiar import DM3_ENTRY, EmpiarReplica


@pytest.fixture(scope="module")
def empiar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmpiarReplica]:
    with EmpiarReplica(tmp_path_factory.mktemp("empiar")) as replica:
        yield replica


def _paths(log: list[tuple[str, str, str | None]]) -> list[str]:
    """Each logged request's path as a server that normalises ``..`` would see it."""
    out = []
    for _method, raw, _range in log:
        path = urllib.parse.unquote(urllib.parse.urlsplit(raw).path)
        out.append(posixpath.normpath(path))
    return out


@pytest.mark.parametrize(
    "directory",
    ["../../../../../../tmp/x", "%2e%2e/%2e%2e/%2e%2e/tmp/x", "data/../../../../tmp/x"],
)
def test_hostile_empiar_directory_sends_no_request_outside(
    tmp_path: Path, empiar: EmpiarReplica, directory: str
) -> None:
    entry = empiar.entries[DM3_ENTRY]
    saved = copy.deepcopy(entry.record["imagesets"])
    entry.record["imagesets"][0]["directory"] = directory
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data")},
            "sources": {
                "empiar": {
                    "api_url": empiar.api_url,
                    "files_url": empiar.files_http_url,
                    "fallback_files_url": empiar.files_ftp_url,
                    "transport": {"attempts": 1, "connect_timeout_s": 5, "read_timeout_s": 5},
                }
            },
        },
    )
    empiar.request_log.clear()
    try:
        source = EmpiarSource(settings)
        try:
            with pytest.raises(RemoteFormatError, match="No request was sent"):
                source.discover([DM3_ENTRY])
        finally:
            source.close()
    finally:
        entry.record["imagesets"][:] = saved
    paths = _paths(list(empiar.request_log))
    assert paths, "the API was asked for the entry"
    base = urllib.parse.urlsplit(empiar.files_http_url).path
    api = urllib.parse.urlsplit(empiar.api_url).path
    outside = [p for p in paths if not (p.startswith(base + "/") or p.startswith(api + "/"))]
    assert outside == []
    # and nothing at all was asked of the file tree (listings included) for that imageset
    assert [p for p in paths if p.startswith(base)] == []


def test_hostile_precomputed_scale_key_sends_no_request_outside(tmp_path: Path) -> None:
    import json

    from emingest.sources.flyem import FlyEMSource
    from emingest.testing.flyem import FlyEMReplica

    with FlyEMReplica(tmp_path / "flyem", shape=(64, 64, 64), levels=2) as fe:
        info_path = fe.root / "emdata" / "clahe_yz" / "jpeg" / "info"
        info = json.loads(info_path.read_text())
        info["scales"][0]["key"] = "../../../../elsewhere/8.0x8.0x8.0"
        info_path.write_text(json.dumps(info))
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(tmp_path / "data")},
                "sources": {
                    "flyem": {"dvid_url": fe.dvid_url, "precomputed_url": fe.precomputed_url}
                },
            },
        )
        source = FlyEMSource(settings)
        with pytest.raises(RemoteFormatError, match="No request was sent"):
            source.discover([], via="precomputed", box="0:8,0:8,0:8")
        paths = _paths(list(fe.request_log))
        assert paths == [urllib.parse.urlsplit(fe.precomputed_url).path + "/info"]
