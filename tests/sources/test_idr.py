"""IdrSource against the loopback IDR (OMERO.web API + EBI file tree over FTP and HTTPS)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from emingest.config import Settings
from emingest.errors import EntryNotFoundError, RemoteFormatError
from emingest.pipeline import Pipeline, VolumeJob
from emingest.records import read_record, record_json_schema, resolve_in_root
from emingest.sources.idr import IdrSource
from emingest.testing.idr import IDRReplica

FAST = {
    "connect_timeout_s": 2.0,
    "read_timeout_s": 5.0,
    "stall_timeout_s": 0.5,
    "attempts": 5,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.05,
    "backoff_jitter": 0.0,
    "chunk_bytes": 16384,
    "parallel_segments": False,
    "trust_env": False,
}
IMAGE = 9846137


@pytest.fixture(scope="module")
def idr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IDRReplica]:
    with IDRReplica(tmp_path_factory.mktemp("idr")) as replica:
        yield replica


@pytest.fixture(autouse=True)
def _clean(idr: IDRReplica) -> Iterator[None]:
    idr.faults.clear()
    idr.faults.stall_s = 2.0
    idr.faults.retry_after_s = 0.2
    idr.request_log.clear()
    yield
    idr.faults.clear()


def make_settings(tmp_path: Path, idr: IDRReplica, protocol: str = "ftp", **transport: Any):
    files = idr.files_ftp_url if protocol == "ftp" else idr.files_http_url
    return Settings.model_validate(
        {
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [16, 32, 32]},
            "pipeline": {"workers": 2, "tile_bytes": 64 << 10},
            "sources": {
                "idr": {"api_url": idr.api_url, "files_url": files, "transport": FAST | transport}
            },
        }
    )


def ingest(settings: Settings, ids: list[str]) -> list[Any]:
    source = IdrSource(settings)
    refs = source.discover(ids)
    with Pipeline(settings) as pipe:
        return pipe.run([VolumeJob(source, ref) for ref in refs])


def check_record(result: Any, idr: IDRReplica, image_id: int) -> None:
    assert result.ok, result.status
    jsonschema.validate(json.loads(result.record_path.read_text()), record_json_schema())
    record = read_record(result.record_path)
    truth = idr.expected_array(image_id)
    assert record.volume_shape == list(truth.shape)
    assert record.voxel_size_nm == pytest.approx(list(idr.expected_voxel_size_nm(image_id)))
    assert record.voxel_size_nm == pytest.approx([20.0, 20.0, 20.0])
    assert record.sha256 == hashlib.sha256(truth.tobytes()).hexdigest()
    raw = idr.tree / idr.file_path(image_id)
    [f] = record.files
    assert f.size_bytes == raw.stat().st_size
    assert f.sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()
    meta = record.additional_metadata
    assert meta["image"]["data"]["@id"] == image_id and meta["imgData"]["id"] == image_id
    assert record.local_paths.raw
    assert resolve_in_root(record.local_paths.raw[0], result.record_path.parents[2]).exists()


@pytest.mark.parametrize("protocol", ["ftp", "http"])
def test_ingest_image(tmp_path, idr, protocol):
    [result] = ingest(make_settings(tmp_path, idr, protocol), [str(IMAGE)])
    check_record(result, idr, IMAGE)
    assert read_record(result.record_path).files[0].url == idr.file_url(IMAGE, protocol)
    # never the rendered JPEGs
    assert not [p for _, p, _ in idr.request_log if "render" in p]


def test_dataset_lists_every_image(tmp_path, idr):
    source = IdrSource(make_settings(tmp_path, idr))
    refs = source.discover([], dataset=idr.dataset_id)
    assert sorted(int(r.source_id) for r in refs) == sorted(idr.image_ids)
    bulk = source.discover([], dataset=idr.bulk_dataset_id)
    expected = [i for i, im in idr.images.items() if im.dataset == idr.bulk_dataset_id]
    assert len(bulk) == len(expected) > 500
    assert {int(r.source_id) for r in bulk} == set(expected)
    pages = [p for _, p, _ in idr.request_log if f"/datasets/{idr.bulk_dataset_id}/images" in p]
    assert len(pages) == -(-len(expected) // 500)


def test_xz_sibling_has_zyx_shape(tmp_path, idr):
    source = IdrSource(make_settings(tmp_path, idr))
    [ref] = source.discover(["9846138"])
    info = source.describe(ref)
    assert info.shape == idr.expected_array(9846138).shape
    assert info.voxel_size_origin.startswith("IDR JSON API")


def test_missing_id_is_entry_not_found(tmp_path, idr):
    source = IdrSource(make_settings(tmp_path, idr))
    with pytest.raises(EntryNotFoundError, match=r"123456789.*api/v0/m/images/123456789"):
        source.discover(["123456789"])
    with pytest.raises(EntryNotFoundError, match="not an IDR image id"):
        source.discover(["abc"])
    with pytest.raises(EntryNotFoundError, match="dataset 424242"):
        source.discover([], dataset=424242)


def test_faults_on_api_and_ftp(tmp_path, idr, caplog):
    """503 + Retry-After on the API, then a stalled and a reset RETR: resumed, right bytes."""
    idr.faults.fail_first = 2
    idr.faults.stall_every = 7
    idr.faults.reset_every = 9
    with caplog.at_level("WARNING", "emingest.transports.retry"):
        [result] = ingest(make_settings(tmp_path, idr, "ftp"), [str(IMAGE)])
    check_record(result, idr, IMAGE)
    assert "HTTP 503" in caplog.text and "retry 1/4 in 0.20 s" in caplog.text
    assert "download ftp://" in caplog.text  # the RETR broke and was resumed


def test_http_truncation_and_resets(tmp_path, idr, caplog):
    # requests: image (discover), image, imgData, original_file_paths, HEAD, then the file
    idr.faults.truncate_every = 6
    idr.faults.reset_every = 7
    with caplog.at_level("WARNING", "emingest.transports.retry"):
        [result] = ingest(make_settings(tmp_path, idr, "http"), [str(IMAGE)])
    check_record(result, idr, IMAGE)
    assert "download http://" in caplog.text
    assert any(r and r.startswith("bytes=") for _, p, r in idr.request_log if p.endswith(".tif"))


def test_hostile_original_path_is_refused(tmp_path, idr):
    image = idr.images[IMAGE]
    saved = image.file
    image.file = "idr0086/../../../../etc/evil.tif"
    try:
        [result] = ingest(make_settings(tmp_path, idr), [str(IMAGE)])
    finally:
        image.file = saved
    assert not result.ok and isinstance(result.error, RemoteFormatError)
    assert "unsafe" in result.status
    assert not list(tmp_path.rglob("evil.tif"))
