"""OpenOrganelle over S3: transient faults on metadata GETs are retried like HTTP and FTP, and a
hostile multiscale path never becomes a request outside the group."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from emingest.config import Settings, load_settings
from emingest.errors import RemoteFormatError
from emingest.sources.openorganelle import OpenOrganelleSource
from emingest.testing.openorganelle import OpenOrganelleReplica


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenOrganelleReplica]:
    """No ``.zmetadata``: every metadata document is its own GET."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "HTTP_PROXY"):
            mp.delenv(name, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        with OpenOrganelleReplica(consolidated=False) as replica:
            yield replica


@pytest.fixture(autouse=True)
def clean(plain: OpenOrganelleReplica) -> Iterator[None]:
    plain.faults.clear()
    plain.clear_request_log()
    yield
    plain.faults.clear()


def settings_for(tmp_path: Path, replica: OpenOrganelleReplica) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data")},
            "sources": {
                "openorganelle": {
                    "endpoint_url": replica.endpoint_url,
                    "transport": {"backoff_initial_s": 0.01},
                }
            },
        },
    )


def metadata_gets(replica: OpenOrganelleReplica) -> list[str]:
    return [p for m, p, _ in replica.request_log if m == "GET" and "/." in p]


@pytest.mark.parametrize("fault", ["reset_first", "truncate_first"])
def test_broken_first_metadata_gets_are_retried(
    tmp_path: Path, plain: OpenOrganelleReplica, fault: str
) -> None:
    setattr(plain.faults, fault, 2)  # the first two GETs break mid-body
    source = OpenOrganelleSource(settings_for(tmp_path, plain))
    (ref,) = source.discover([plain.dataset])
    info = source.describe(ref)
    assert info.shape == plain.shape
    gets = metadata_gets(plain)
    first = gets[0]
    assert first.endswith("/.zmetadata")  # the first metadata document asked for
    assert gets[:3] == [first, first, first], "the broken GET was sent again, twice"


def test_hostile_multiscale_path_is_refused_before_any_request(
    tmp_path: Path, plain: OpenOrganelleReplica
) -> None:
    group = f"{plain.dataset}/{plain.dataset}.zarr/recon-2/em/hostile"
    attrs = json.loads(json.dumps(plain.zattrs))
    attrs["multiscales"][0]["datasets"][0]["path"] = "../../../../../other-dataset/s0"
    plain.put_objects(
        plain.bucket,
        {f"{group}/.zattrs": json.dumps(attrs).encode(), f"{group}/.zgroup": b'{"zarr_format":2}'},
    )
    plain.clear_request_log()
    source = OpenOrganelleSource(settings_for(tmp_path, plain))
    (ref,) = source.discover([plain.dataset], array="recon-2/em/hostile")
    with pytest.raises(RemoteFormatError, match="No request was sent"):
        source.describe(ref)
    assert [p for _, p, _ in plain.request_log if ".." in p or "other-dataset" in p] == []
