"""IDR's original_file_paths as the real server answers: the managed-repository ``repo`` path
does not map onto the public tree; the in-place ``client`` path does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emingest.config import Settings
from emingest.errors import RemoteFormatError
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources.idr import IdrSource
from emingest.testing.idr import IDRReplica

IMAGE = 9846137
FAST = {"attempts": 2, "backoff_initial_s": 0.01, "backoff_jitter": 0.0, "trust_env": False}


@pytest.fixture(scope="module")
def idr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IDRReplica]:
    with IDRReplica(
        tmp_path_factory.mktemp("idr"), image_shape=(6, 30, 40), bulk_images=0
    ) as replica:
        yield replica


@pytest.fixture(autouse=True)
def _form(idr: IDRReplica) -> Iterator[None]:
    yield
    idr.file_paths_form = "managed"


def source_for(tmp_path: Path, idr: IDRReplica) -> IdrSource:
    settings = Settings.model_validate(
        {
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [8, 16, 16]},
            "sources": {
                "idr": {
                    "api_url": idr.api_url,
                    "files_url": idr.files_http_url,
                    "transport": FAST,
                }
            },
        }
    )
    return IdrSource(settings)


def test_the_replica_answers_in_the_managed_repository_form(idr: IDRReplica) -> None:
    paths = idr.original_file_paths(IMAGE)
    assert not paths["repo"][0].lstrip("/").startswith("uod/idr/filesets/")
    assert paths["client"][0].startswith("uod/idr/filesets/")


@pytest.mark.parametrize("form", ["managed", "repository"])
def test_the_path_that_maps_is_taken_and_ingested(
    tmp_path: Path, idr: IDRReplica, form: str
) -> None:
    idr.file_paths_form = form
    source = source_for(tmp_path, idr)
    try:
        (ref,) = source.discover([str(IMAGE)])
        info = source.describe(ref)
        assert info.download_url == idr.file_url(IMAGE, "http")
        assert info.additional_metadata["original_file_rel_path"] == idr.file_path(IMAGE)
        with Pipeline(source.settings) as pipe:
            (result,) = pipe.run([VolumeJob(source, ref)])
    finally:
        source.close()
    assert result.status == "complete", result.status


def test_no_path_that_maps_is_a_clear_remote_format_error(tmp_path: Path, idr: IDRReplica) -> None:
    idr.file_paths_form = "unmapped"
    source = source_for(tmp_path, idr)
    try:
        (ref,) = source.discover([str(IMAGE)])
        with pytest.raises(RemoteFormatError, match=r"no original file path is below") as err:
            source.describe(ref)
    finally:
        source.close()
    # the message shows what the server said, so the user can set repository_prefix
    assert "demo_52/" in str(err.value) and "nfs/bioimage/drop/" in str(err.value)
    assert "repository_prefix" in str(err.value)
