"""EpflSource against the loopback documents.epfl.ch replica, driven through the pipeline."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from emingest.config import Settings
from emingest.errors import ConfigError, EntryNotFoundError
from emingest.pipeline import Pipeline, VolumeJob
from emingest.records import read_record, record_json_schema, resolve_in_root
from emingest.sources.epfl import EpflSource
from emingest.testing.epfl import EPFLReplica

FAST = {
    "connect_timeout_s": 2.0,
    "read_timeout_s": 5.0,
    "stall_timeout_s": 0.5,
    "attempts": 5,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.05,
    "backoff_jitter": 0.0,
    "chunk_bytes": 16384,
    "trust_env": False,
}


@pytest.fixture(scope="module")
def epfl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EPFLReplica]:
    with EPFLReplica(tmp_path_factory.mktemp("epfl")) as replica:
        yield replica


@pytest.fixture(autouse=True)
def _clean(epfl: EPFLReplica) -> Iterator[None]:
    epfl.faults.clear()
    epfl.faults.stall_s = 2.0
    epfl.faults.retry_after_s = 0.2
    epfl.request_log.clear()
    yield
    epfl.faults.clear()


def make_settings(tmp_path: Path, epfl: EPFLReplica, **transport: Any) -> Settings:
    return Settings.model_validate(
        {
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [16, 32, 32]},
            "pipeline": {"workers": 2, "tile_bytes": 64 << 10},
            "sources": {"epfl": {"base_url": epfl.base_url, "transport": FAST | transport}},
        }
    )


def ingest(settings: Settings, names: list[str]) -> list[Any]:
    source = EpflSource(settings)
    refs = source.discover(names)
    with Pipeline(settings) as pipe:
        return pipe.run([VolumeJob(source, ref) for ref in refs])


def file_gets(epfl: EPFLReplica, name: str) -> list[str | None]:
    path = epfl.file_url(name)[len(epfl.url) :]
    return [rng for method, p, rng in epfl.request_log if method == "GET" and p == path]


def test_ingest_all_files(tmp_path, epfl):
    settings = make_settings(tmp_path, epfl, parallel_min_bytes=100_000, segment_bytes=65536)
    results = ingest(settings, [])
    assert [r.ref.name for r in results] == list(
        ("volumedata", "training", "training_groundtruth", "testing", "testing_groundtruth")
    )
    schema = record_json_schema()
    for result in results:
        assert result.ok, result.status
        record = read_record(result.record_path)
        jsonschema.validate(json.loads(result.record_path.read_text()), schema)
        truth = epfl.expected_array(result.ref.name)
        assert record.volume_shape == list(truth.shape)
        assert record.voxel_size_nm == [5.0, 5.0, 5.0]
        assert "documentation" in record.voxel_size_origin
        assert record.sha256 == hashlib.sha256(np.ascontiguousarray(truth).tobytes()).hexdigest()
        raw = epfl.file_path(result.ref.name)
        [f] = record.files
        assert f.name == f"{result.ref.name}.tif" and f.url == epfl.file_url(result.ref.name)
        assert f.size_bytes == raw.stat().st_size
        assert f.sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()
        assert record.local_paths.raw
        root = result.record_path.parents[2]
        assert resolve_in_root(record.local_paths.raw[0], root).exists()
    gt = read_record(results[2].record_path).additional_metadata
    assert gt["role"] == "labels" and gt["labels_of"] == "training"
    # volumedata is above parallel_min_bytes: fetched as Range segments
    assert len(file_gets(epfl, "volumedata")) > 1


def test_discover_and_labels(tmp_path, epfl):
    source = EpflSource(make_settings(tmp_path, epfl))
    [gt] = source.discover(["training_groundtruth.tif"])
    assert gt.get("labels_of") == "training"
    target = source.labels_target(gt)
    assert target is not None and target.name == "training"
    assert gt.locator.endswith("/data/%20ElectronMicroscopy_Hippocampus/training_groundtruth.tif")
    with pytest.raises(EntryNotFoundError, match="nosuch"):
        source.discover(["nosuch"])


def test_bad_settings_are_config_errors(tmp_path, epfl):
    settings = Settings.model_validate({"sources": {"epfl": {"files": ["nope"]}}})
    with pytest.raises(ConfigError, match=r"sources\.epfl"):
        EpflSource(settings)


def test_range_off_stall_and_503(tmp_path, epfl):
    """No Range, a 503 with Retry-After first, then a stall: still the right volume."""
    epfl.faults.range_support = False
    epfl.faults.fail_first = 1
    # request 1: 503 to the fingerprint's HEAD, 2: that HEAD again, 3: the download's HEAD,
    # 4: the GET stalls, 5: again, whole
    epfl.faults.stall_every = 4
    settings = make_settings(tmp_path, epfl, parallel_min_bytes=1)
    [result] = ingest(settings, ["training"])
    assert result.ok, result.status
    record = read_record(result.record_path)
    truth = epfl.expected_array("training")
    assert record.sha256 == hashlib.sha256(truth.tobytes()).hexdigest()
    assert file_gets(epfl, "training") == [None, None]


def test_truncated_and_reset_bodies_are_refetched(tmp_path, epfl):
    epfl.faults.truncate_every = 2
    epfl.faults.reset_every = 3
    # request 1: the fingerprint's HEAD; the GETs are 2 (truncated), 3 (reset), 4, 5 ...
    [result] = ingest(make_settings(tmp_path, epfl, parallel_segments=False), ["testing"])
    assert result.ok, result.status
    record = read_record(result.record_path)
    raw = epfl.file_path("testing")
    assert record.files[0].sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()
    gets = file_gets(epfl, "testing")
    assert len(gets) >= 3 and gets[0] is None and gets[1] is not None  # resumed with Range


def test_killed_download_resumes(tmp_path, epfl):
    """A partial file left by a killed run is resumed: fewer bytes fetched than the file."""
    settings = make_settings(tmp_path, epfl, parallel_segments=False)
    source = EpflSource(settings)
    [ref] = source.discover(["volumedata"])
    raw = epfl.file_path("volumedata").read_bytes()
    cache = tmp_path / "data" / ".cache" / "epfl"
    cache.mkdir(parents=True)
    kept = len(raw) // 3
    (cache / ".volumedata.tif.part").write_bytes(raw[:kept])
    state = {"url": ref.locator, "mode": "stream", "size": len(raw), "ranges": True}
    (cache / ".volumedata.tif.part.json").write_text(json.dumps(state))
    f = source._fetch(ref)
    assert f.resumed_from == kept and f.fetched_bytes == len(raw) - kept < len(raw)
    assert file_gets(epfl, "volumedata") == [f"bytes={kept}-"]
    assert f.sha256 == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("keep_raw", [True, False])
def test_keep_raw_false_removes_the_download_once_complete(tmp_path, epfl, keep_raw):
    settings = make_settings(tmp_path, epfl)
    settings.storage.keep_raw = keep_raw
    [result] = ingest(settings, ["testing"])
    assert result.ok, result.status
    record = read_record(result.record_path)
    cache = tmp_path / "data" / ".cache" / "epfl"
    # a download's lock file stays (removing a flock file races with its next user)
    left = sorted(p.name for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock")
    if keep_raw:
        assert record.local_paths.raw
        assert resolve_in_root(record.local_paths.raw[0], tmp_path / "data").exists()
        assert "testing.tif" in left
    else:
        assert record.local_paths.raw is None
        assert left == []  # no file, no done marker, no partial
    # the volume itself does not depend on the download
    assert record.sha256 == hashlib.sha256(epfl.expected_array("testing").tobytes()).hexdigest()
    assert (
        record.files[0].sha256 == hashlib.sha256(epfl.file_path("testing").read_bytes()).hexdigest()
    )
