"""OpenOrganelleSource against the loopback S3 replica: metadata, crops, levels, faults, resume."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from ome_zarr_models.v05 import Image

from emingest.config import Settings, load_settings
from emingest.errors import ConfigError, EntryNotFoundError, RemoteFormatError
from emingest.pipeline import Pipeline, VolumeJob, VolumePaths
from emingest.sources.base import Region, VolumeRef
from emingest.sources.openorganelle import (
    OpenOrganelleSource,
    level_box,
    parse_levels,
    parse_region,
)
from emingest.testing.openorganelle import OpenOrganelleReplica

BOX = "5:67,10:141,33:159"  # not chunk-aligned; reaches the ragged last chunk in y and x
BOX_SLICES = (slice(5, 67), slice(10, 141), slice(33, 159))


@pytest.fixture(scope="module", autouse=True)
def no_aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No credentials, profiles or instance metadata to fall back on; no proxies."""
    missing = str(tmp_path_factory.mktemp("aws") / "missing")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        for name in ("AWS_PROFILE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_CONFIG_FILE", missing)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="module")
def oo(no_aws_environment: None) -> Iterator[OpenOrganelleReplica]:
    """Slash-separated keys with consolidated ``.zmetadata``."""
    with OpenOrganelleReplica() as replica:
        yield replica


@pytest.fixture(scope="module")
def plain(no_aws_environment: None) -> Iterator[OpenOrganelleReplica]:
    """Dot-separated keys, no ``.zmetadata``: every document is fetched on its own."""
    with OpenOrganelleReplica(dimension_separator=".", consolidated=False) as replica:
        yield replica


@pytest.fixture
def faults(oo: OpenOrganelleReplica) -> Iterator[Any]:
    oo.faults.clear()
    yield oo.faults
    oo.faults.clear()


def settings_for(
    tmp_path: Path,
    replica: OpenOrganelleReplica,
    tile_bytes: int = 256 << 10,
    chunk: int = 32,
    **source: Any,
) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [chunk] * 3},
            "pipeline": {"workers": 2, "tile_bytes": tile_bytes},
            "logging": {"log_dir": str(tmp_path / "logs")},
            "sources": {
                "openorganelle": {
                    "endpoint_url": replica.endpoint_url,
                    "retry_backoff_s": 0.01,
                    **source,
                }
            },
        },
    )


def chunk_gets(replica: OpenOrganelleReplica) -> list[str]:
    """Voxel (chunk) GETs in the request log, metadata documents excluded."""
    return [
        p
        for m, p, _ in replica.request_log
        if m == "GET" and "/s" in p and not p.rsplit("/", 1)[-1].startswith(".")
    ]


def crop_of(replica: OpenOrganelleReplica, level: int, region: str) -> np.ndarray:
    box = [tuple(map(int, part.split(":"))) for part in region.split(",")]
    return replica.expected_level(level)[tuple(slice(a, b) for a, b in box)]


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def run_pipeline(settings: Settings, refs: list[VolumeRef]) -> list[Any]:
    source = OpenOrganelleSource(settings)
    with Pipeline(settings) as pipe:
        return pipe.run([VolumeJob(source, ref) for ref in refs])


# -- options --------------------------------------------------------------------------------------


def test_option_parsing() -> None:
    assert parse_region(BOX) == ((5, 67), (10, 141), (33, 159))
    assert parse_region(":,0:8,4:") == ((0, -1), (0, 8), (4, -1))
    assert parse_region(None) is None
    for bad in ("1:2,3:4", "5:5,0:1,0:1", "a:b,0:1,0:1", "-1:3,0:1,0:1", "1-2,0:1,0:1"):
        with pytest.raises(ConfigError, match="--region"):
            parse_region(bad)
    assert parse_levels("0,2") == (0, 2)
    assert parse_levels("s1-s3") == (1, 2, 3)
    assert parse_levels([2, 0]) == (0, 2)
    with pytest.raises(ConfigError, match="--levels"):
        parse_levels("x")
    # level-k box: start floored, stop ceiled, clipped to the level's shape
    assert level_box(((5, 67), (10, 141), (33, 159)), (2, 2, 2), (35, 75, 80)) == (
        (2, 34),
        (5, 71),
        (16, 80),
    )


# -- describe -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["oo", "plain"])
def test_describe_carries_the_source_pyramid(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    replica: OpenOrganelleReplica = request.getfixturevalue(which)
    source = OpenOrganelleSource(settings_for(tmp_path, replica))
    (ref,) = source.discover([replica.dataset])
    assert ref.get("array") == "recon-2/em/fibsem-int16"
    info = source.describe(ref)
    assert info.shape == replica.shape and info.dtype == np.int16
    assert info.voxel_size_nm == (2.96, 4.0, 4.0)
    datasets = replica.multiscales["datasets"]
    assert [lv.shape for lv in info.levels or []] == replica.level_shapes
    for level, ds in zip(info.levels or [], datasets, strict=True):
        scale, translation = ds["coordinateTransformations"]
        assert list(level.voxel_size_nm) == scale["scale"]  # the live floats, unchanged
        assert list(level.translation_nm) == translation["translation"]
    meta = info.additional_metadata
    assert meta["zattrs"] == replica.zattrs
    assert meta["zarrays"]["s0"]["dimension_separator"] == replica.dimension_separator
    assert meta["bucket"] == replica.bucket and meta["key"].endswith("recon-2/em/fibsem-int16")


def test_crop_levels_and_translations(oo: OpenOrganelleReplica, tmp_path: Path) -> None:
    source = OpenOrganelleSource(settings_for(tmp_path, oo))
    (ref,) = source.discover([oo.dataset], region=BOX)
    info = source.describe(ref)
    levels = info.levels or []
    assert [lv.shape for lv in levels] == [(62, 131, 126), (32, 66, 64), (16, 34, 32)]
    ds = oo.multiscales["datasets"]
    starts = [(5, 10, 33), (2, 5, 16), (1, 2, 8)]
    for lv, d, start in zip(levels, ds, starts, strict=True):
        scale, shift = (
            t[k]
            for t, k in zip(d["coordinateTransformations"], ("scale", "translation"), strict=True)
        )
        assert lv.translation_nm == pytest.approx(
            [t + a * s for t, a, s in zip(shift, start, scale, strict=True)]
        )
    assert info.additional_metadata["region"] == BOX
    (only, *_) = source.discover([oo.dataset], levels="1,2", region=BOX)
    picked = source.describe(only)
    assert [lv.shape for lv in picked.levels or []] == [(32, 66, 64), (16, 34, 32)]
    assert picked.voxel_size_nm == (5.92, 8.0, 8.0) and only.name != ref.name


def test_list_arrays(oo: OpenOrganelleReplica, plain: OpenOrganelleReplica, tmp_path: Path) -> None:
    for replica in (oo, plain):
        listing = OpenOrganelleSource(settings_for(tmp_path, replica)).list_arrays(replica.dataset)
        assert [a.path for a in listing] == ["recon-2/em/fibsem-int16", "recon-2/labels/mito_seg"]
        assert listing[0].dtype == "int16" and listing[1].dtype == "uint64"
        assert [s for _, s in listing[0].levels] == replica.level_shapes


# -- reads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["oo", "plain"])
def test_region_reads_equal_the_generator(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    replica: OpenOrganelleReplica = request.getfixturevalue(which)
    source = OpenOrganelleSource(settings_for(tmp_path, replica))
    (ref,) = source.discover([replica.dataset], region=BOX)
    info = source.describe(ref)
    reader = source.open(ref)
    try:
        assert reader.shape == info.shape and reader.dtype == info.dtype
        for k, level in enumerate(info.levels or []):
            whole: Region = tuple(slice(0, n) for n in level.shape)  # type: ignore[assignment]
            region = info.additional_metadata["source_levels"][k]["region"]
            np.testing.assert_array_equal(reader.read_level(k, whole), crop_of(replica, k, region))
        # an unaligned box inside the crop, crossing into the ragged edge chunks
        part = (slice(50, 62), slice(100, 131), slice(90, 126))
        got = reader.read(part)
        assert got.flags.c_contiguous and got.dtype == np.dtype("int16")
        np.testing.assert_array_equal(got, replica.expected_level(0)[55:67, 110:141, 123:159])
        with pytest.raises(ValueError, match="outside"):
            reader.read((slice(0, 63), slice(0, 1), slice(0, 1)))
    finally:
        reader.close()


# -- errors before any download -------------------------------------------------------------------


def test_missing_dataset_and_array(oo: OpenOrganelleReplica, tmp_path: Path) -> None:
    source = OpenOrganelleSource(settings_for(tmp_path, oo))
    with pytest.raises(EntryNotFoundError, match=r"s3://janelia-cosem-datasets/jrc_nope"):
        source.discover(["jrc_nope"])
    (ref,) = source.discover([oo.dataset], array="recon-2/em/fibsem-uint8")
    oo.clear_request_log()
    with pytest.raises(EntryNotFoundError, match=r"s3://.*/recon-2/em/fibsem-uint8.*--list"):
        source.describe(ref)
    (arr,) = source.discover([oo.dataset], array=f"{oo.dataset}.zarr/recon-2/em/fibsem-int16/s0")
    with pytest.raises(RemoteFormatError, match="not a multiscale group"):
        source.describe(arr)
    (lv,) = source.discover([oo.dataset], levels="7")
    with pytest.raises(ConfigError, match="levels 0-2"):
        source.describe(lv)
    assert chunk_gets(oo) == []


def test_out_of_bounds_box_fails_the_volume_before_download(
    oo: OpenOrganelleReplica, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, oo)
    refs = OpenOrganelleSource(settings).discover([oo.dataset], region="0:10,0:10,150:161")
    oo.clear_request_log()
    (result,) = run_pipeline(settings, refs)
    assert not result.ok and isinstance(result.error, ConfigError)
    assert "(70, 150, 160)" in str(result.error) and "150:161" in str(result.error)
    assert chunk_gets(oo) == []
    assert json.loads(result.record_path.read_text())["status"].startswith("error")


# -- end to end -----------------------------------------------------------------------------------


def test_pipeline_copies_the_crop_into_ome_zarr(oo: OpenOrganelleReplica, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, oo)
    refs = OpenOrganelleSource(settings).discover([oo.dataset], region=BOX)
    (result,) = run_pipeline(settings, refs)
    assert result.status == "complete", result.status
    record = result.record
    paths = VolumePaths.for_ref(settings.storage.data_root, refs[0])
    assert paths.store.path.parent == tmp_path / "data" / "openorganelle" / oo.dataset
    Image.from_zarr(zarr.open_group(paths.store.path, mode="r"))  # valid NGFF 0.5
    group = zarr.open_group(paths.store.path, mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    info = OpenOrganelleSource(settings).describe(refs[0])
    for k, (level, ds) in enumerate(zip(info.levels or [], datasets, strict=True)):
        region = info.additional_metadata["source_levels"][k]["region"]
        expected = crop_of(oo, k, region)
        stored = group[ds["path"]]
        assert stored.dtype == np.int16
        np.testing.assert_array_equal(stored[:], expected)
        scale, translation = ds["coordinateTransformations"]
        assert scale["scale"] == list(level.voxel_size_nm)
        assert translation["translation"] == list(level.translation_nm)
    assert record.sha256 == sha256(crop_of(oo, 0, BOX))
    assert record.voxel_size_nm == [2.96, 4.0, 4.0] and record.dtype == "int16"
    assert record.additional_metadata["zattrs"] == oo.zattrs


@pytest.mark.parametrize("kind", ["status_every", "reset_every", "truncate_every"])
def test_faults_are_survived(
    oo: OpenOrganelleReplica, faults: Any, tmp_path: Path, kind: str
) -> None:
    settings = settings_for(tmp_path, oo)
    refs = OpenOrganelleSource(settings).discover([oo.dataset], levels="0", region="0:64,0:96,0:96")
    faults.retry_after_s = 0.01
    setattr(faults, kind, 3)
    faults.reset_counters()
    oo.clear_request_log()
    (result,) = run_pipeline(settings, refs)
    assert result.status == "complete", result.status
    assert result.record.sha256 == sha256(oo.expected_level(0)[:64, :96, :96])
    gets = chunk_gets(oo)
    assert len(gets) > len(set(gets))  # some chunk GETs failed and were retried


def test_metadata_503_slowdown_is_retried(
    oo: OpenOrganelleReplica, faults: Any, tmp_path: Path
) -> None:
    faults.fail_first = 2
    faults.retry_after_s = 0.01
    faults.reset_counters()
    oo.clear_request_log()
    source = OpenOrganelleSource(settings_for(tmp_path, oo))
    (ref,) = source.discover([oo.dataset])
    assert source.describe(ref).shape == oo.shape
    # the first request was refused twice (503 SlowDown) and asked a third time
    log = [(method, path) for method, path, _ in oo.request_log]
    assert log[0] == log[1] == log[2], log[:4]


def test_stalled_transfer_is_abandoned_and_retried(
    oo: OpenOrganelleReplica, faults: Any, tmp_path: Path
) -> None:
    """A GET that stalls (30 s) outlasts ``region_timeout_s``; the retry goes out on fresh
    handles, so it never waits on the stalled request."""
    source = OpenOrganelleSource(settings_for(tmp_path, oo, region_timeout_s=1.0))
    (ref,) = source.discover([oo.dataset], levels="0")
    reader = source.open(ref)
    try:
        reader.read((slice(0, 1), slice(0, 1), slice(0, 1)))  # metadata opened before the fault
        oo.clear_request_log()
        faults.stall_s = 30.0
        faults.stall_every = 1
        faults.reset_counters()

        def unstall() -> None:  # the first GET is stalling by now; let the retry through
            time.sleep(0.5)
            faults.stall_every = 0

        threading.Thread(target=unstall, daemon=True).start()
        box = (slice(0, 64), slice(64, 128), slice(0, 64))
        np.testing.assert_array_equal(reader.read(box), oo.expected_level(0)[box])
        key = "/s0/0/1/0"
        assert sum(p.endswith(key) for _, p, _ in oo.request_log) >= 2
    finally:
        reader.close()


def test_memory_bounded_by_tile_bytes(oo: OpenOrganelleReplica, tmp_path: Path) -> None:
    """Every read the pipeline asks of the reader fits ``pipeline.tile_bytes``, though the crop
    is many times ``workers x 3 x tile_bytes``; tensorstore keeps no chunk cache."""
    tile_bytes = 16 << 10
    settings = settings_for(tmp_path, oo, tile_bytes=tile_bytes, chunk=16)
    source = OpenOrganelleSource(settings)
    sizes: list[int] = []

    class Recording:
        """Delegates to the real source; notes the size of every region read."""

        name = source.name

        def discover(self, spec: Any, **options: Any) -> Any:
            return source.discover(spec, **options)

        def describe(self, ref: VolumeRef) -> Any:
            return source.describe(ref)

        def open(self, ref: VolumeRef) -> Any:
            reader = source.open(ref)
            real = reader.read_level

            def read_level(level: int, region: Region) -> np.ndarray:
                data = real(level, region)
                sizes.append(data.nbytes)
                return data

            reader.read_level = read_level  # type: ignore[method-assign]
            return reader

    (ref,) = source.discover([oo.dataset], region=BOX)
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(Recording(), ref)])  # type: ignore[arg-type]
    assert result.status == "complete"
    assert result.record.nbytes > 10 * settings.pipeline.workers * 3 * tile_bytes
    assert sizes and max(sizes) <= tile_bytes
    assert result.record.sha256 == sha256(crop_of(oo, 0, BOX))


_CHILD = """
import sys
from emingest.config import load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources.openorganelle import OpenOrganelleSource
endpoint, root, dataset, box = sys.argv[1:]
settings = load_settings(environ={}, overrides={
    "storage": {"data_root": root, "chunk_shape": [16, 16, 16]},
    "pipeline": {"workers": 2, "tile_bytes": 8192},
    "logging": {"log_dir": root + "/logs"},
    "sources": {"openorganelle": {"endpoint_url": endpoint, "retry_backoff_s": 0.01}},
})
source = OpenOrganelleSource(settings)
with Pipeline(settings) as pipe:
    (result,) = pipe.run([VolumeJob(source, r) for r in source.discover([dataset], region=box)])
print(result.status)
"""


def test_killed_copy_resumes(oo: OpenOrganelleReplica, faults: Any, tmp_path: Path) -> None:
    box = "0:48,0:64,0:64"
    root = tmp_path / "data"
    settings = settings_for(tmp_path, oo).model_copy(deep=True)
    settings.storage.data_root = root
    (ref,) = OpenOrganelleSource(settings).discover([oo.dataset], region=box)
    paths = VolumePaths.for_ref(root, ref)
    # requests after the 9th are held: the child is stuck part way, whatever the machine's speed
    faults.reset_counters()  # the count starts with the child's first request
    oo.clear_request_log()
    faults.hold_after = 9
    cmd = [sys.executable, "-c", _CHILD, oo.endpoint_url, str(root), oo.dataset, box]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # the replica says when the child is held; the child's journal says what it finished
    # before; kill it once both are seen (held, it cannot finish meanwhile)
    while not (len(oo.request_log) > 9 and _journal_lines(paths.journal.path) >= 1):
        assert proc.poll() is None, "the copy ended before it was held"
        assert time.monotonic() < deadline, "the copy was never held with a tile written"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the held copy ended by itself"
    done = _journal_lines(paths.journal.path)
    assert done >= 1 and json.loads(paths.record.path.read_text())["status"] == "saving-data"
    faults.clear()
    oo.clear_request_log()
    rerun = subprocess.run([*cmd], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and rerun.stdout.strip() == "complete", rerun.stderr
    # 16^3 tiles: 3*4*4 at s0, 2*2*2 at s1, 1 at s2, one chunk GET each; finished ones are skipped
    assert len(chunk_gets(oo)) <= 57 - done + 1
    record = json.loads(paths.record.path.read_text())
    assert record["status"] == "complete"
    assert record["sha256"] == sha256(crop_of(oo, 0, box))
    assert not paths.journal.path.exists()
    group = zarr.open_group(paths.store.path, mode="r")
    np.testing.assert_array_equal(group["s1"][:], crop_of(oo, 1, "0:24,0:32,0:32"))


def _journal_lines(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0
