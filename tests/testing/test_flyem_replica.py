"""The FlyEM hemibrain replica's contract, checked with independent clients only.

requests reads DVID's REST API as neuclease does; imagecodecs decodes the JPEG blocks; the
precomputed volume is read by TensorStore's ``neuroglancer_precomputed`` driver over its
``http`` kvstore, as it would read ``https://storage.googleapis.com/...``. None of emingest's own
readers is involved, so a failure here is the replica's.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
import requests
import tensorstore as ts

from emingest.testing.flyem import UUID, FlyEMReplica
from emingest.testing.synthetic import SyntheticEM

SHAPE = (200, 256, 288)  # z, y, x: none a multiple of 64 but y
SEED = 3


@pytest.fixture(scope="module", autouse=True)
def no_proxies() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in (
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ):
            mp.delenv(name, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="module")
def fe(tmp_path_factory: pytest.TempPathFactory, no_proxies: None) -> Iterator[FlyEMReplica]:
    with FlyEMReplica(tmp_path_factory.mktemp("flyem"), shape=SHAPE, seed=SEED) as replica:
        yield replica


@pytest.fixture(scope="module")
def full(no_proxies: None) -> Iterator[FlyEMReplica]:
    with FlyEMReplica(shape=(70, 90, 100), seed=SEED, full_extents=True) as replica:
        yield replica


@pytest.fixture
def clean(fe: FlyEMReplica) -> Iterator[FlyEMReplica]:
    """``fe`` with faults, throttle and payload limit reset around the test."""
    limit = fe.payload_limit
    fe.faults.clear()
    yield fe
    fe.faults.clear()
    fe.throttle = False
    fe.payload_limit = limit


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        yield s


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """The volume, made independently of the replica."""
    return SyntheticEM(SHAPE, "uint8", SEED).array()


def node(replica: FlyEMReplica, rest: str, uuid: str = UUID, inst: str = "grayscale") -> str:
    return f"{replica.dvid_url}/api/node/{uuid}/{inst}/{rest}"


def raw_url(
    replica: FlyEMReplica,
    size_xyz: tuple[int, ...],
    offset_xyz: tuple[int, ...],
    inst: str = "grayscale",
) -> str:
    size = "_".join(map(str, size_xyz))
    offset = "_".join(map(str, offset_xyz))
    return node(replica, f"raw/0_1_2/{size}/{offset}", inst=inst)


def parse_blocks(payload: bytes) -> list[tuple[tuple[int, int, int], bytes]]:
    """DVID block records: ``int32le bx, by, bz, nbytes`` then the bytes, until the end."""
    out, pos = [], 0
    while pos < len(payload):
        bx, by, bz, n = struct.unpack_from("<iiii", payload, pos)
        pos += 16
        out.append(((bx, by, bz), payload[pos : pos + n]))
        pos += n
    assert pos == len(payload)
    return out


def padded_block(truth: np.ndarray, bx: int, by: int, bz: int) -> np.ndarray:
    block = np.zeros((64, 64, 64), np.uint8)
    part = truth[bz * 64 : bz * 64 + 64, by * 64 : by * 64 + 64, bx * 64 : bx * 64 + 64]
    block[: part.shape[0], : part.shape[1], : part.shape[2]] = part
    return block


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def open_scale(url: str, k: int) -> Any:
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "http", "base_url": url},
        "scale_index": k,
    }
    return ts.open(spec, read=True).result()


def zyx(store_region: Any) -> np.ndarray:
    """A TensorStore x, y, z, channel read as a z, y, x array."""
    return np.transpose(store_region.read().result()[..., 0], (2, 1, 0))


# -- DVID metadata ------------------------------------------------------------------------------


def test_server_and_repo_info(fe: FlyEMReplica, http: requests.Session) -> None:
    r = http.get(f"{fe.dvid_url}/api/server/info")
    assert r.status_code == 200 and isinstance(r.json(), dict)
    for uuid in (UUID, "a89eb"):
        r = http.get(f"{fe.dvid_url}/api/repo/{uuid}/info")
        assert r.status_code == 200
        repo = r.json()
        assert repo["Root"] == UUID
        assert set(repo["DataInstances"]) == {"grayscale", "grayscalejpeg"}
        assert repo["DataInstances"]["grayscale"]["Base"]["TypeName"] == "uint8blk"
    assert set(http.get(f"{fe.dvid_url}/api/repos/info").json()) == {UUID}


def test_instance_info_has_inclusive_xyz_extents(fe: FlyEMReplica, http: requests.Session) -> None:
    for uuid in (UUID, "a89eb3"):
        r = http.get(node(fe, "info", uuid=uuid))
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        info = r.json()
        base, ext = info["Base"], info["Extended"]
        assert (base["TypeName"], base["Name"], base["RepoUUID"]) == ("uint8blk", "grayscale", UUID)
        assert ext["MinPoint"] == [0, 0, 0]
        assert ext["MaxPoint"] == [SHAPE[2] - 1, SHAPE[1] - 1, SHAPE[0] - 1]
        assert ext["BlockSize"] == [64, 64, 64]
        assert ext["VoxelSize"] == [8, 8, 8]
        assert ext["VoxelUnits"] == ["nanometers"] * 3
        assert ext["Values"] == [{"DataType": "uint8", "Label": "uint8"}]
        assert info["Extents"]["MaxPoint"] == ext["MaxPoint"]
    jpeg = http.get(node(fe, "info", inst="grayscalejpeg")).json()
    assert jpeg["Base"]["Compression"].startswith("jpeg")


def test_unknown_uuid_and_instance_are_dvid_400s(fe: FlyEMReplica, http: requests.Session) -> None:
    r = http.get(f"{fe.dvid_url}/api/repo/ffff/info")
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/plain")
    assert (
        r.text.strip() == "Could not find UUID with partial match to ffff! (/api/repo/ffff/info)."
    )
    r = http.get(node(fe, "info", inst="segmentation"))
    assert r.status_code == 400
    assert r.text.strip() == f"invalid data instance name (/api/node/{UUID}/segmentation/info)."
    r = http.get(node(fe, "labels/1", inst="grayscale"))
    assert r.status_code == 400 and "Bad API call" in r.text
    assert http.get(f"{fe.dvid_url}/api/nothing").status_code == 404


# -- DVID /raw --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset_zyx", "size_zyx"),
    [((0, 0, 0), (64, 64, 64)), ((130, 70, 5), (21, 33, 77)), ((3, 250, 1), (197, 6, 287))],
)
def test_raw_reads_any_alignment_in_zyx_order(
    fe: FlyEMReplica,
    http: requests.Session,
    truth: np.ndarray,
    offset_zyx: tuple[int, int, int],
    size_zyx: tuple[int, int, int],
) -> None:
    r = http.get(raw_url(fe, size_zyx[::-1], offset_zyx[::-1]))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert len(r.content) == int(np.prod(size_zyx))
    got = np.frombuffer(r.content, np.uint8).reshape(size_zyx)
    region = tuple(slice(o, o + s) for o, s in zip(offset_zyx, size_zyx, strict=True))
    assert np.array_equal(got, truth[region])
    assert np.array_equal(got, fe.expected(region))  # type: ignore[arg-type]


def test_raw_zero_fills_beyond_the_extents(
    fe: FlyEMReplica, http: requests.Session, truth: np.ndarray
) -> None:
    # z 190..230, y -10..20, x 280..300: partly outside on every side it can be
    r = http.get(raw_url(fe, (20, 30, 40), (280, -10, 190)))
    assert r.status_code == 200
    got = np.frombuffer(r.content, np.uint8).reshape(40, 30, 20)
    want = np.zeros_like(got)
    want[:10, 10:, :8] = truth[190:, :20, 280:]
    assert np.array_equal(got, want)
    assert np.array_equal(got, fe.expected((slice(190, 230), slice(-10, 20), slice(280, 300))))
    assert not got[10:].any() and not got[:, :10].any() and not got[:, :, 8:].any()
    outside = http.get(raw_url(fe, (8, 8, 8), (1000, 1000, 1000)))
    assert outside.status_code == 200 and outside.content == bytes(512)


def test_raw_over_the_payload_limit_is_a_400(clean: FlyEMReplica, http: requests.Session) -> None:
    clean.payload_limit = 100_000
    url = raw_url(clean, (64, 64, 64), (0, 0, 0))
    r = http.get(url)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/plain")
    path = url.split(str(clean.port), 1)[1]
    assert r.text.strip() == (
        f"Requested payload (262144 bytes) exceeds this DVID server's set limit (100000) ({path})."
    )
    assert http.get(raw_url(clean, (40, 40, 40), (0, 0, 0))).status_code == 200


def test_throttle_true_gets_503_while_switched_on(
    clean: FlyEMReplica, http: requests.Session
) -> None:
    url = raw_url(clean, (10, 10, 10), (0, 0, 0))
    assert http.get(url, params={"throttle": "true"}).status_code == 200
    clean.throttle = True
    r = http.get(url, params={"throttle": "true"})
    assert r.status_code == 503 and "throttled" in r.text
    blocks = node(clean, "subvolblocks/64_64_64/0_0_0")
    assert http.get(blocks, params={"throttle": "true"}).status_code == 503
    assert http.get(url).status_code == 200  # not throttled unless asked
    clean.throttle = False
    assert http.get(url, params={"throttle": "true"}).status_code == 200


def test_generic_faults_apply(clean: FlyEMReplica, http: requests.Session) -> None:
    clean.faults.fail_first = 1
    clean.faults.status_code = 503
    url = raw_url(clean, (10, 10, 10), (0, 0, 0))
    r = http.get(url)
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert http.get(url).status_code == 200


def test_jpeg_instance_raw_is_lossy(
    fe: FlyEMReplica, http: requests.Session, truth: np.ndarray
) -> None:
    r = http.get(raw_url(fe, (50, 40, 30), (250, 100, 60), inst="grayscalejpeg"))
    assert r.status_code == 200
    got = np.frombuffer(r.content, np.uint8).reshape(30, 40, 50)
    want = np.zeros_like(got)
    want[:, :, :38] = truth[60:90, 100:140, 250:288]
    assert 0 < mae(got, want) < 3
    region = (slice(60, 90), slice(100, 140), slice(250, 300))
    assert np.array_equal(got, fe.expected(region, "grayscalejpeg"))


# -- DVID block streams ---------------------------------------------------------------------


def test_subvolblocks_must_be_block_aligned(fe: FlyEMReplica, http: requests.Session) -> None:
    for rest in ("subvolblocks/64_64_64/1_0_0", "subvolblocks/64_64_60/0_0_0"):
        r = http.get(node(fe, rest))
        assert r.status_code == 400
        assert r.headers["Content-Type"].startswith("text/plain")
        assert "non-block aligned" in r.text
        assert r.text.strip().endswith(f"(/api/node/{UUID}/grayscale/{rest}).")


def test_subvolblocks_records_jpeg_and_uncompressed(
    fe: FlyEMReplica, http: requests.Session, truth: np.ndarray
) -> None:
    # x 192..384 (blocks 3, 4 and 5; 5 lies past x = 288 and is unset), y 128..256, z 128..192
    url = node(fe, "subvolblocks/192_128_64/192_128_128")
    exact = parse_blocks(http.get(url, params={"compression": "uncompressed"}).content)
    lossy = parse_blocks(http.get(url).content)
    order = [(bx, by, 2) for by in (2, 3) for bx in (3, 4)]
    assert [c for c, _ in exact] == order  # z, then y, then x; unset blocks left out
    assert [c for c, _ in lossy] == order
    for (bx, by, bz), data in exact:
        assert len(data) == 64**3
        block = np.frombuffer(data, np.uint8).reshape(64, 64, 64)
        assert np.array_equal(block, padded_block(truth, bx, by, bz))
    for (bx, by, bz), data in lossy:
        assert data[:3] == b"\xff\xd8\xff"
        image = imagecodecs.jpeg_decode(data)
        assert image.shape == (4096, 64)  # 64 wide, 64 * 64 high
        assert mae(image.reshape(64, 64, 64), padded_block(truth, bx, by, bz)) < 3


def test_specificblocks_in_request_order(
    fe: FlyEMReplica, http: requests.Session, truth: np.ndarray
) -> None:
    url = node(fe, "specificblocks")
    params = {"blocks": "4,3,3,0,0,0,99,0,0,-1,0,0", "compression": "uncompressed"}
    records = parse_blocks(http.get(url, params=params).content)
    assert [c for c, _ in records] == [(4, 3, 3), (0, 0, 0)]
    for (bx, by, bz), data in records:
        assert np.array_equal(
            np.frombuffer(data, np.uint8).reshape(64, 64, 64), padded_block(truth, bx, by, bz)
        )
    records = parse_blocks(http.get(url, params={"blocks": "1,2,0"}).content)
    assert [c for c, _ in records] == [(1, 2, 0)]
    decoded = imagecodecs.jpeg_decode(records[0][1]).reshape(64, 64, 64)
    assert mae(decoded, truth[0:64, 128:192, 64:128]) < 3
    bad = http.get(url, params={"blocks": "1,2"})
    assert bad.status_code == 400 and "three coordinates per block" in bad.text
    bad = http.get(url, params={"blocks": "1,2,0", "compression": "lz4"})
    assert bad.status_code == 400 and "compression" in bad.text


# -- precomputed on "GCS" -------------------------------------------------------------------


def test_info_is_sharded_jpeg_with_an_unsharded_raw_scale(
    fe: FlyEMReplica, http: requests.Session
) -> None:
    info = http.get(f"{fe.precomputed_url}/info").json()
    assert (info["type"], info["data_type"], info["num_channels"]) == ("image", "uint8", 1)
    scales = info["scales"]
    assert len(scales) >= 3
    for k, scale in enumerate(scales):
        assert scale["resolution"] == [8 * 2**k] * 3
        assert scale["chunk_sizes"] == [[64, 64, 64]]
        assert scale["voxel_offset"] == [0, 0, 0]
        assert scale["size"] == [-(-n // 2**k) for n in SHAPE[::-1]]
    assert scales[0]["size"] == [288, 256, 200]
    sharded = [s for s in scales if "sharding" in s]
    assert sharded and all(s["encoding"] == "jpeg" for s in sharded)
    for s in sharded:
        spec = s["sharding"]
        assert spec["@type"] == "neuroglancer_uint64_sharded_v1"
        assert (spec["hash"], spec["minishard_index_encoding"]) == ("identity", "gzip")
        assert {"preshift_bits", "minishard_bits", "shard_bits"} <= set(spec)
        assert "data_encoding" not in spec
    assert [s["encoding"] for s in scales if "sharding" not in s] == ["raw"]
    assert http.get(f"{fe.raw_precomputed_url}/info").json() == info


def test_shard_file_follows_the_spec(fe: FlyEMReplica, http: requests.Session) -> None:
    """Parse one shard by hand: index, gzip minishard index, chunk data (a JPEG)."""
    scale = http.get(f"{fe.precomputed_url}/info").json()["scales"][0]
    spec = scale["sharding"]
    base = f"{fe.precomputed_url}/{scale['key']}"
    index_bytes = 16 << spec["minishard_bits"]
    name = f"{0:0{-(-spec['shard_bits'] // 4)}x}.shard"
    r = http.get(f"{base}/{name}", headers={"Range": f"bytes=0-{index_bytes - 1}"})
    assert r.status_code == 206 and len(r.content) == index_bytes
    index = np.frombuffer(r.content, "<u8").reshape(-1, 2)
    start, end = (int(v) for v in index[0])
    r = http.get(
        f"{base}/{name}", headers={"Range": f"bytes={index_bytes + start}-{index_bytes + end - 1}"}
    )
    table = np.frombuffer(gzip.decompress(r.content), "<u8").reshape(3, -1)
    ids, sizes = np.cumsum(table[0]), table[2]
    offsets, end = [], 0
    for delta, size in zip(table[1], sizes, strict=True):  # each relative to the previous end
        offsets.append(end + int(delta))
        end = offsets[-1] + int(size)
    assert ids[0] == 0  # chunk (0, 0, 0) has Morton code 0 and lands in shard 0, minishard 0
    a = index_bytes + int(offsets[0])
    r = http.get(f"{base}/{name}", headers={"Range": f"bytes={a}-{a + int(sizes[0]) - 1}"})
    image = imagecodecs.jpeg_decode(r.content)
    assert image.shape == (64 * 64, 64)
    assert mae(image.reshape(64, 64, 64), fe.expected_scale(0)[:64, :64, :64]) < 3


def test_tensorstore_reads_the_sharded_jpeg_scales(fe: FlyEMReplica) -> None:
    for k in (0, 1):
        store = open_scale(fe.precomputed_url, k)
        want = fe.expected_scale(k)
        assert tuple(store.domain.shape) == (*want.shape[::-1], 1)
        got = zyx(store)
        assert got.shape == want.shape
        assert mae(got, want) < 3
    store = open_scale(fe.precomputed_url, 0)
    want = fe.expected_scale(0)
    # a region at the upper edge, aligned to no chunk: x 250..288, y 200..256, z 150..200
    before = len(fe.request_log)
    got = zyx(store[250:288, 200:256, 150:200])
    assert mae(got, want[150:200, 200:256, 250:288]) < 3
    assert any(rng for _, _, rng in fe.request_log[before:])  # sharded reads are ranged


def test_tensorstore_reads_the_raw_scale_exactly(fe: FlyEMReplica) -> None:
    k = len(fe.info["scales"]) - 1
    store = open_scale(fe.raw_precomputed_url, k)
    want = fe.expected_scale(k)
    assert np.array_equal(zyx(store), want)
    # the edge chunk x 64..72 is clipped; read across it, unaligned
    assert np.array_equal(zyx(store[50:72, 13:64, 7:50]), want[7:50, 13:64, 50:72])


def test_scales_are_rounded_2x_means(fe: FlyEMReplica, truth: np.ndarray) -> None:
    assert np.array_equal(fe.expected_scale(0), truth)
    for k in (1, 2):
        below = fe.expected_scale(k - 1).astype(np.float64)
        level = fe.expected_scale(k)
        assert level.shape == tuple(-(-n // 2) for n in below.shape)
        assert level[3, 5, 7] == np.rint(below[6:8, 10:12, 14:16].mean())


def test_bucket_answers_like_gcs(fe: FlyEMReplica, http: requests.Session) -> None:
    url = f"{fe.precomputed_url}/info"
    full = http.get(url)
    assert full.headers["Accept-Ranges"] == "bytes" and "ETag" in full.headers
    head = http.head(url)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(full.content)
    part = http.get(url, headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == full.content[2:10]
    assert http.get(url, headers={"Range": f"bytes={len(full.content)}-"}).status_code == 416
    assert http.get(url, headers={"If-None-Match": full.headers["ETag"]}).status_code == 304
    missing = http.get(f"{fe.precomputed_url}/8.0x8.0x8.0/ffff.shard")
    assert missing.status_code == 404 and "NoSuchKey" in missing.text


def test_root_holds_the_files(fe: FlyEMReplica) -> None:
    folder = Path(fe.root) / "emdata" / "clahe_yz" / "jpeg"
    assert (folder / "info").is_file()
    assert any(folder.glob("8.0x8.0x8.0/*.shard"))


# -- full extents ------------------------------------------------------------------------------


def test_full_extents_advertises_the_hemibrain(full: FlyEMReplica, http: requests.Session) -> None:
    ext = http.get(node(full, "info")).json()["Extended"]
    assert ext["MaxPoint"] == [34426, 39724, 41393]
    corner = http.get(raw_url(full, (120, 100, 80), (0, 0, 0)))
    got = np.frombuffer(corner.content, np.uint8).reshape(80, 100, 120)
    want = np.zeros_like(got)
    want[:70, :90, :100] = SyntheticEM((70, 90, 100), "uint8", SEED).array()
    assert np.array_equal(got, want)
    far = http.get(raw_url(full, (64, 64, 64), (30000, 20000, 41000)))
    assert far.status_code == 200 and far.content == bytes(64**3)
    blocks = http.get(node(full, "specificblocks"), params={"blocks": "1,1,1,300,300,300"})
    assert [c for c, _ in parse_blocks(blocks.content)] == [(1, 1, 1)]


def test_full_extents_precomputed(full: FlyEMReplica) -> None:
    store = open_scale(full.precomputed_url, 0)
    assert tuple(store.domain.shape) == (34427, 39725, 41394, 1)
    assert full.info["scales"][0]["sharding"]["shard_bits"] == 15
    got = zyx(store[0:128, 0:128, 0:128])
    want = np.zeros_like(got)
    want[:70, :90, :100] = full.expected_scale(0)
    assert mae(got, want) < 3
    assert not zyx(store[20000:20016, 30000:30016, 100:116]).any()
    k = len(full.info["scales"]) - 1
    raw = open_scale(full.precomputed_url, k)
    s = full.expected_scale(k)
    assert np.array_equal(zyx(raw[0:64, 0:64, 0:64])[: s.shape[0], : s.shape[1], : s.shape[2]], s)
