"""FlyEMSource against the loopback hemibrain replica: DVID /raw and precomputed, faults, resume."""

from __future__ import annotations

import hashlib
import json
import re
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
from emingest.errors import ConfigError, EntryNotFoundError
from emingest.pipeline import Pipeline, VolumeJob, VolumePaths
from emingest.records import read_record
from emingest.sources.base import Region, VolumeRef
from emingest.sources.flyem import (
    DVID_BLOCK,
    FlyEMSource,
    aligned_pieces,
    crop_origin,
    parse_box,
)
from emingest.testing.flyem import FlyEMReplica

SHAPE = (200, 256, 288)  # z, y, x: only y is a multiple of 64
SEED = 3
BOX = "5:150,10:256,33:288"  # not block-aligned; reaches the ragged last block in x and z
BOX_SLICES = (slice(5, 150), slice(10, 256), slice(33, 288))
_RAW = re.compile(r"/raw/0_1_2/(\d+)_(\d+)_(\d+)/")


@pytest.fixture(scope="module", autouse=True)
def no_proxies() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            mp.delenv(name, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="module")
def fe(tmp_path_factory: pytest.TempPathFactory, no_proxies: None) -> Iterator[FlyEMReplica]:
    with FlyEMReplica(tmp_path_factory.mktemp("flyem"), shape=SHAPE, seed=SEED) as replica:
        yield replica


@pytest.fixture(scope="module")
def full(no_proxies: None) -> Iterator[FlyEMReplica]:
    """The real hemibrain extents; data only in a small corner at the origin."""
    with FlyEMReplica(shape=(70, 90, 100), seed=SEED, full_extents=True) as replica:
        yield replica


@pytest.fixture
def faults(fe: FlyEMReplica) -> Iterator[Any]:
    fe.faults.clear()
    fe.throttle = False
    yield fe.faults
    fe.faults.clear()
    fe.throttle = False


def settings_for(
    tmp_path: Path,
    replica: FlyEMReplica,
    tile_bytes: int = 1 << 20,
    chunk: int = 32,
    **source: Any,
) -> Settings:
    transport = {
        "trust_env": False,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "read_timeout_s": 5.0,
        **source.pop("transport", {}),
    }
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [chunk] * 3},
            "pipeline": {"workers": 2, "tile_bytes": tile_bytes},
            "logging": {"log_dir": str(tmp_path / "logs")},
            "sources": {
                "flyem": {
                    "dvid_url": replica.dvid_url,
                    "precomputed_url": replica.precomputed_url,
                    "max_payload_bytes": 1 << 20,
                    "transport": transport,
                    **source,
                }
            },
        },
    )


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def whole(shape: tuple[int, ...]) -> Region:
    return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))


def run_pipeline(settings: Settings, refs: list[VolumeRef]) -> list[Any]:
    source = FlyEMSource(settings)
    with Pipeline(settings) as pipe:
        return pipe.run([VolumeJob(source, ref) for ref in refs])


def raw_requests(replica: FlyEMReplica) -> list[tuple[int, int, int]]:
    return [
        tuple(int(v) for v in m.groups())  # type: ignore[misc]
        for _, p, _ in list(replica.request_log)
        if (m := _RAW.search(p))
    ]


# -- arithmetic -----------------------------------------------------------------------------------


def test_parse_box() -> None:
    assert parse_box("1:2,3:40,5:60") == ((1, 2), (3, 40), (5, 60))
    assert parse_box(None) is None
    for bad in ("1:2,3:4", "2:1,0:1,0:1", "a:b,0:1,0:1", "-1:2,0:1,0:1"):
        with pytest.raises(ConfigError):
            parse_box(bad)


@pytest.mark.parametrize(
    "box,limit",
    [
        (((5, 150), (10, 256), (33, 288)), 1 << 20),
        (((0, 64), (0, 64), (0, 64)), DVID_BLOCK**3),
        (((63, 65), (1, 300), (100, 1000)), DVID_BLOCK**3),
        (((0, 300), (17, 317), (5, 305)), 1 << 20),
    ],
)
def test_aligned_pieces_cover_the_box_within_the_payload(box: Any, limit: int) -> None:
    pieces = aligned_pieces(box, limit)
    covered = np.zeros([b - a for a, b in box], np.uint8)
    for piece in pieces:
        assert np.prod([b - a for a, b in piece]) <= limit
        for (a, b), (lo, hi) in zip(piece, box, strict=True):
            assert lo <= a < b <= hi
            assert a == lo or a % DVID_BLOCK == 0  # inner edges on the block grid
            assert b == hi or b % DVID_BLOCK == 0
        covered[
            tuple(slice(a - lo, b - lo) for (a, b), (lo, _) in zip(piece, box, strict=True))
        ] += 1
    assert (covered == 1).all()


def test_crop_origin_is_seeded_and_inside() -> None:
    extents = ((0, 41394), (0, 39725), (0, 34427))
    a = crop_origin(extents, 1000, 42)
    assert a == crop_origin(extents, 1000, 42)
    assert a != crop_origin(extents, 1000, 43)
    assert all(lo <= o and o + 1000 <= hi for o, (lo, hi) in zip(a, extents, strict=True))
    assert crop_origin(((0, 10), (0, 10), (0, 10)), 10, 1) == (0, 0, 0)
    with pytest.raises(ConfigError, match="does not fit"):
        crop_origin(((0, 10), (0, 20), (0, 20)), 11, 1)


# -- metadata -------------------------------------------------------------------------------------


def test_describe_full_extents_converts_inclusive_xyz(full: FlyEMReplica, tmp_path: Path) -> None:
    source = FlyEMSource(settings_for(tmp_path, full))
    (ref,) = source.discover([], box="41000:41394,39700:39725,34400:34427")
    info = source.describe(ref)
    assert info.shape == (394, 25, 27)
    assert info.dtype == np.uint8 and info.voxel_size_nm == (8.0, 8.0, 8.0)
    meta = info.additional_metadata
    assert meta["extents_zyx"] == [[0, 41394], [0, 39725], [0, 34427]]
    assert meta["dvid_info"]["Extended"]["MaxPoint"] == list(full.max_point_xyz)
    assert meta["crop_origin_zyx"] == [41000, 39700, 34400]
    reader = source.open(ref)
    try:  # the far corner: past the synthetic data, DVID answers zeros
        assert not reader.read(whole(info.shape)).any()
    finally:
        reader.close()


def test_out_of_bounds_box_fails_before_any_download(full: FlyEMReplica, tmp_path: Path) -> None:
    source = FlyEMSource(settings_for(tmp_path, full))
    full.request_log.clear()
    with pytest.raises(ConfigError, match="outside the extents"):
        source.discover([], box="0:10,0:10,34420:34428")  # MaxPoint x is 34426, inclusive
    (ref,) = source.discover([], box="0:10,0:10,34417:34427")  # the last voxel is fine
    bad = VolumeRef(
        "flyem", "x", "grayscale", extra=(("via", "dvid"), ("box", "0:10,0:10,0:34428"))
    )
    with pytest.raises(ConfigError, match="nothing was downloaded"):
        source.describe(bad)
    (result,) = run_pipeline(settings_for(tmp_path, full), [bad])
    assert result.status.startswith("error") and "outside the extents" in result.status
    assert raw_requests(full) == []
    assert ref.source_id == "hemibrain-z0_y0_x34417-10"


def test_crop_with_seed_is_reproducible(full: FlyEMReplica, tmp_path: Path) -> None:
    source = FlyEMSource(settings_for(tmp_path, full))
    (a,) = source.discover([], crop=1000, seed=11)
    (b,) = source.discover([], crop=1000, seed=11)
    (c,) = source.discover([], crop=1000, seed=12)
    assert a == b and a.source_id != c.source_id
    assert a.get("seed") == 11 and a.get("crop") == 1000
    info = source.describe(a)
    assert info.shape == (1000, 1000, 1000)
    meta = info.additional_metadata
    assert meta["seed"] == 11 and meta["crop"] == 1000
    assert meta["crop_origin_zyx"] == list(
        crop_origin(((0, 41394), (0, 39725), (0, 34427)), 1000, 11)
    )
    # the default crop is 1000 with a drawn seed, recorded so it can be fetched again
    (d,) = source.discover([])
    assert d.get("crop") == 1000 and isinstance(d.get("seed"), int)
    (e,) = source.discover([], crop=1000, seed=d.get("seed"))
    assert e == d
    with pytest.raises(ConfigError, match="does not fit"):
        source.discover([], crop=40000, seed=1)
    with pytest.raises(ConfigError):
        source.discover([], box="0:1,0:1,0:1", crop=5)
    with pytest.raises(ConfigError):
        source.discover([], via="ftp")
    with pytest.raises(ConfigError, match="--scale"):
        source.discover([], scale=1)


def test_unknown_instance_is_not_found(fe: FlyEMReplica, tmp_path: Path) -> None:
    source = FlyEMSource(settings_for(tmp_path, fe, instance="nosuch"))
    with pytest.raises(EntryNotFoundError, match="nosuch"):
        source.discover([], box=BOX)
    source = FlyEMSource(settings_for(tmp_path, fe, precomputed_url=fe.precomputed_url + "x"))
    with pytest.raises(EntryNotFoundError):
        source.discover([], box=BOX, via="precomputed")


# -- voxels ---------------------------------------------------------------------------------------


def test_dvid_reads_equal_the_replica(fe: FlyEMReplica, faults: Any, tmp_path: Path) -> None:
    source = FlyEMSource(settings_for(tmp_path, fe, max_payload_bytes=DVID_BLOCK**3))
    (ref,) = source.discover([], box=BOX)
    reader = source.open(ref)
    try:
        expected = fe.expected(BOX_SLICES)
        np.testing.assert_array_equal(reader.read(whole(reader.shape)), expected)
        sub = (slice(60, 61), slice(3, 130), slice(250, 255))  # edge of the last x block
        np.testing.assert_array_equal(reader.read(sub), expected[sub])
    finally:
        reader.close()
    assert max(np.prod(r) for r in raw_requests(fe)) <= DVID_BLOCK**3


def test_dvid_pipeline_end_to_end(fe: FlyEMReplica, faults: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, fe)
    (ref,) = FlyEMSource(settings).discover([], box=BOX)
    (result,) = run_pipeline(settings, [ref])
    assert result.status == "complete", result.status
    expected = fe.expected(BOX_SLICES)
    paths = VolumePaths.for_ref(settings.storage.data_root, ref)
    group = zarr.open_group(paths.store.path, mode="r")
    np.testing.assert_array_equal(group["s0"][:], expected)
    Image.from_zarr(group)
    record = read_record(paths.record.path)
    assert record.sha256 == sha256(expected)
    assert record.voxel_size_nm == [8.0, 8.0, 8.0]
    assert record.additional_metadata["box_zyx"] == [[5, 150], [10, 256], [33, 288]]
    assert record.additional_metadata["crop_origin_zyx"] == [5, 10, 33]
    assert record.additional_metadata["via"] == "dvid"


def test_precomputed_jpeg_and_raw_scales(fe: FlyEMReplica, faults: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, fe)
    source = FlyEMSource(settings)
    (jpeg,) = source.discover([], box=BOX, via="precomputed")
    (raw,) = source.discover([], box="3:50,1:64,7:72", via="precomputed", scale=2)
    assert jpeg.name == "clahe_yz_jpeg" and raw.source_id.endswith("-s2")
    assert source.describe(raw).voxel_size_nm == (32.0, 32.0, 32.0)
    jpeg_result, raw_result = run_pipeline(settings, [jpeg, raw])
    assert jpeg_result.status == "complete" and raw_result.status == "complete"
    root = settings.storage.data_root
    got = zarr.open_group(VolumePaths.for_ref(root, jpeg).store.path, mode="r")["s0"][:]
    error = np.abs(got.astype(np.int16) - fe.expected(BOX_SLICES)).mean()
    assert error < 4  # JPEG is lossy (quality 95 in the replica)
    got = zarr.open_group(VolumePaths.for_ref(root, raw).store.path, mode="r")["s0"][:]
    np.testing.assert_array_equal(got, fe.expected_scale(2)[3:50, 1:64, 7:72])  # raw: exact
    record = read_record(VolumePaths.for_ref(root, raw).record.path)
    assert record.additional_metadata["precomputed_info"]["scales"][2]["encoding"] == "raw"
    assert record.sha256 == sha256(fe.expected_scale(2)[3:50, 1:64, 7:72])


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["status", "reset", "stall", "truncate"])
def test_dvid_survives_faults(fe: FlyEMReplica, faults: Any, tmp_path: Path, fault: str) -> None:
    faults.retry_after_s = 0.01
    faults.stall_s = 1.5
    setattr(faults, f"{fault}_every", 4)  # with 10 attempts a piece never fails them all
    source = FlyEMSource(
        settings_for(
            tmp_path,
            fe,
            max_payload_bytes=DVID_BLOCK**3,
            transport={"read_timeout_s": 0.3, "attempts": 10},
        )
    )
    (ref,) = source.discover([], box=BOX)
    reader = source.open(ref)
    try:
        np.testing.assert_array_equal(reader.read(whole(reader.shape)), fe.expected(BOX_SLICES))
    finally:
        reader.close()
    assert {"status": "503"}.get(fault, fault) in faults.fired  # the fault really happened


def test_dvid_throttle_503_is_retried(fe: FlyEMReplica, faults: Any, tmp_path: Path) -> None:
    source = FlyEMSource(settings_for(tmp_path, fe, transport={"attempts": 200}))
    (ref,) = source.discover([], box=BOX)
    fe.request_log.clear()
    fe.throttle = True  # every throttle=true request answers 503 until switched off
    stop = threading.Event()

    def unthrottle_after_three() -> None:  # once three requests were refused, not after a time
        while faults.fired.count("throttled") < 3 and not stop.wait(0.01):
            pass
        fe.throttle = False

    switch = threading.Thread(target=unthrottle_after_three, daemon=True)
    switch.start()
    reader = source.open(ref)
    try:
        np.testing.assert_array_equal(reader.read(whole(reader.shape)), fe.expected(BOX_SLICES))
    finally:
        reader.close()
        stop.set()
        switch.join()
    assert faults.fired.count("throttled") >= 3
    raw = [p for _, p, _ in fe.request_log if "/raw/" in p]
    assert all("throttle=true" in p for p in raw)
    assert len(raw) > len(set(raw))  # the refused requests were asked again


@pytest.mark.parametrize("fault", ["status", "stall"])
def test_precomputed_survives_faults(
    fe: FlyEMReplica, faults: Any, tmp_path: Path, fault: str
) -> None:
    faults.retry_after_s = 0.01
    faults.stall_s = 2.0
    setattr(faults, f"{fault}_every", 4)
    source = FlyEMSource(
        settings_for(tmp_path, fe, region_timeout_s=0.5, transport={"attempts": 10})
    )
    (ref,) = source.discover([], box="0:50,0:64,0:72", via="precomputed", scale=2)
    reader = source.open(ref)
    try:
        for z in range(0, 50, 10):  # several reads, so several requests meet a fault
            region = (slice(z, z + 10), slice(0, 64), slice(0, 72))
            got = reader.read(region)
            np.testing.assert_array_equal(got, fe.expected_scale(2)[z : z + 10])
    finally:
        reader.close()
    assert {"status": "503"}.get(fault, fault) in faults.fired


# -- memory and resume ----------------------------------------------------------------------------


def test_memory_bounded_by_tile_and_payload(fe: FlyEMReplica, faults: Any, tmp_path: Path) -> None:
    tile_bytes = 512 << 10  # each tile needs several /raw requests of at most one block
    settings = settings_for(
        tmp_path, fe, tile_bytes=tile_bytes, chunk=64, max_payload_bytes=DVID_BLOCK**3
    )
    source = FlyEMSource(settings)
    sizes: list[int] = []

    class Recording(FlyEMSource):
        def open(self, ref: VolumeRef) -> Any:
            reader = source.open(ref)
            real = reader.read

            def read(region: Region) -> np.ndarray:
                data = real(region)
                sizes.append(data.nbytes)
                return data

            reader.read = read  # type: ignore[method-assign]
            return reader

    (ref,) = source.discover([], box=BOX)
    fe.request_log.clear()
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(Recording(settings), ref)])
    assert result.status == "complete", result.status
    # larger than every buffer together (the pipeline's peak is ~ workers x 3 x tile_bytes)
    assert result.record.nbytes > 3 * settings.pipeline.workers * tile_bytes
    assert sizes and max(sizes) <= tile_bytes
    assert max(np.prod(r) for r in raw_requests(fe)) <= DVID_BLOCK**3
    assert result.record.sha256 == sha256(fe.expected(BOX_SLICES))


_CHILD = """
import sys
from emingest.config import load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources.flyem import FlyEMSource
url, root, box = sys.argv[1:]
settings = load_settings(environ={}, overrides={
    "storage": {"data_root": root, "chunk_shape": [16, 16, 16]},
    "pipeline": {"workers": 2, "tile_bytes": 8192},
    "logging": {"log_dir": root + "/logs"},
    "sources": {"flyem": {"dvid_url": url, "transport": {"trust_env": False,
                "backoff_initial_s": 0.01}}},
})
source = FlyEMSource(settings)
with Pipeline(settings) as pipe:
    (result,) = pipe.run([VolumeJob(source, r) for r in source.discover([], box=box)])
print(result.status)
"""


def test_killed_copy_resumes(fe: FlyEMReplica, faults: Any, tmp_path: Path) -> None:
    box = "10:58,20:84,30:94"
    root = tmp_path / "data"
    settings = settings_for(tmp_path, fe)
    (ref,) = FlyEMSource(settings).discover([], box=box)
    paths = VolumePaths.for_ref(root, ref)
    # requests after the 8th are held: the child is stuck part way, whatever the machine's speed
    faults.reset_counters()  # the count starts with the child's first request
    faults.hold_after = 8
    cmd = [sys.executable, "-c", _CHILD, fe.dvid_url, str(root), box]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # the replica says when the child is held; the child's journal says what it finished
    # before; kill it once both are seen (held, it cannot finish meanwhile)
    while not ("hold" in faults.fired and _journal_lines(paths.journal.path) >= 1):
        assert proc.poll() is None, "the copy ended before it was held"
        assert time.monotonic() < deadline, "the copy was never held with a tile written"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the held copy ended by itself"
    done = _journal_lines(paths.journal.path)
    assert done >= 1 and json.loads(paths.record.path.read_text())["status"] == "saving-data"
    assert "hold" in faults.fired
    faults.clear()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and rerun.stdout.strip() == "complete", rerun.stderr
    expected = fe.expected((slice(10, 58), slice(20, 84), slice(30, 94)))
    record = json.loads(paths.record.path.read_text())
    assert record["status"] == "complete"
    assert record["sha256"] == sha256(expected)
    assert not paths.journal.path.exists()
    np.testing.assert_array_equal(zarr.open_group(paths.store.path, mode="r")["s0"][:], expected)


def _journal_lines(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0
