"""Every read endpoint of ``emingest serve`` against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
import tifffile

from emingest.config import Settings
from emingest.serve.loopback import ApiServer
from emingest.testing.epfl import EPFLReplica

VOLUME = "epfl/ca1-hippocampus/volumedata"
ORIGIN = {"Origin": "http://viewer.example"}


def truth(replica: EPFLReplica, name: str) -> np.ndarray:
    """The archive's own file, read by tifffile: the independent expectation."""
    return tifffile.imread(replica.folder / f"{name}.tif")


def error_of(resp: requests.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["status"] == status
    assert body["error"]
    return str(body["error"])


# -- catalog ----------------------------------------------------------------------------------


def test_records_list_filters_and_pages(api: ApiServer) -> None:
    page = requests.get(f"{api.url}/api/records", timeout=10).json()
    assert page["total"] == 5
    ids = [r["id"] for r in page["items"]]
    assert VOLUME in ids and "epfl/ca1-hippocampus/training_groundtruth" in ids
    item = next(r for r in page["items"] if r["id"] == VOLUME)
    assert item["shape"] == [24, 160, 192]
    assert item["thumbnail_url"].endswith("/thumbnail.png")
    assert item["data_url"].startswith("/data/epfl/ca1-hippocampus/volumedata.ome.zarr")
    assert "record" not in item

    one = requests.get(f"{api.url}/api/records", params={"limit": 2, "offset": 1}, timeout=10)
    assert [r["id"] for r in one.json()["items"]] == ids[1:3]
    small = requests.get(
        f"{api.url}/api/records", params={"max_shape": "20,100,100", "full": "true"}, timeout=10
    ).json()
    assert {r["id"] for r in small["items"]} == {
        f"epfl/ca1-hippocampus/{n}"
        for n in ("training", "training_groundtruth", "testing", "testing_groundtruth")
    }
    assert all(r["record"]["status"] == "complete" for r in small["items"])
    none = requests.get(f"{api.url}/api/records", params={"source": "idr"}, timeout=10).json()
    assert none["total"] == 0


def test_records_list_rejects_bad_filters(api: ApiServer) -> None:
    msg = error_of(
        requests.get(f"{api.url}/api/records", params={"status": "done"}, timeout=10), 400
    )
    assert "complete" in msg
    msg = error_of(
        requests.get(f"{api.url}/api/records", params={"min_shape": "1,2"}, timeout=10), 400
    )
    assert "z,y,x" in msg
    error_of(requests.get(f"{api.url}/api/records", params={"limit": "0"}, timeout=10), 422)


def test_one_record_with_levels_labels_and_links(api: ApiServer) -> None:
    body = requests.get(f"{api.url}/api/records/epfl/ca1-hippocampus/training", timeout=10).json()
    assert body["id"] == "epfl/ca1-hippocampus/training"
    assert body["labels"] == ["epfl/ca1-hippocampus/training_groundtruth"]
    assert [lv["shape"] for lv in body["levels"]][:2] == [[16, 64, 96], [8, 32, 48]]
    assert body["record"]["sha256"] == body["sha256"]
    assert body["neuroglancer_source"] == f"zarr3://{api.url}{body['data_url']}/"
    lo, hi = body["contrast"]
    assert 0 <= lo < hi <= 255


def test_unknown_record_is_a_json_404_with_cors(api: ApiServer) -> None:
    resp = requests.get(f"{api.url}/api/records/epfl/nope/none", headers=ORIGIN, timeout=10)
    assert "epfl/nope/none" in error_of(resp, 404)
    assert resp.headers["access-control-allow-origin"] == "*"


def test_report(api: ApiServer) -> None:
    report = requests.get(f"{api.url}/api/report", timeout=30).json()
    assert report["records_by_source"] == {"epfl": 5}
    assert report["status_by_source"]["epfl"]["complete"] == 5


def test_openapi_docs(api: ApiServer) -> None:
    assert "swagger" in requests.get(f"{api.url}/docs", timeout=10).text.lower()
    paths = requests.get(f"{api.url}/openapi.json", timeout=10).json()["paths"]
    for path in ("/api/records", "/api/jobs", "/api/search", "/api/report"):
        assert path in paths


# -- regions ----------------------------------------------------------------------------------


def test_region_npy_equals_the_archive_file(api: ApiServer, epfl_replica: EPFLReplica) -> None:
    resp = requests.get(
        f"{api.url}/api/records/{VOLUME}/region",
        params={"z": "3:7", "y": "10:90", "x": "5:150"},
        timeout=10,
    )
    assert resp.status_code == 200
    got = np.load(io.BytesIO(resp.content))
    np.testing.assert_array_equal(got, truth(epfl_replica, "volumedata")[3:7, 10:90, 5:150])
    assert resp.headers["x-shape"] == "4,80,145"


def test_region_raw_with_shape_and_dtype_headers(api: ApiServer, epfl_replica: EPFLReplica) -> None:
    resp = requests.get(
        f"{api.url}/api/records/{VOLUME}/region",
        params={"z": "5", "format": "raw"},
        headers=ORIGIN,
        timeout=10,
    )
    shape = tuple(int(v) for v in resp.headers["x-shape"].split(","))
    assert shape == (1, 160, 192)
    assert "x-shape" in resp.headers["access-control-expose-headers"].lower()
    got = np.frombuffer(resp.content, np.dtype(resp.headers["x-dtype"])).reshape(shape)
    np.testing.assert_array_equal(got[0], truth(epfl_replica, "volumedata")[5])


def test_region_of_a_coarser_level(api: ApiServer, epfl_replica: EPFLReplica) -> None:
    resp = requests.get(f"{api.url}/api/records/{VOLUME}/region", params={"level": 1}, timeout=10)
    got = np.load(io.BytesIO(resp.content))
    full = truth(epfl_replica, "volumedata").astype(np.float64)
    assert got.shape == (12, 80, 96)
    mean = full.reshape(12, 2, 80, 2, 96, 2).mean(axis=(1, 3, 5))
    assert np.abs(got - mean).max() <= 1.0


def test_region_png_plane(api: ApiServer, epfl_replica: EPFLReplica) -> None:
    resp = requests.get(
        f"{api.url}/api/records/{VOLUME}/region",
        params={"x": "40", "format": "png", "vmin": 0, "vmax": 255},
        timeout=10,
    )
    assert resp.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(image, truth(epfl_replica, "volumedata")[:, :, 40])


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"z": "24"}, 400, "outside"),
        ({"z": "5:2"}, 400, "empty"),
        ({"y": "a:b"}, 400, "start:stop"),
        ({"level": 9}, 400, "level 9"),
        ({"format": "png"}, 400, "plane"),
        ({"format": "tiff"}, 422, "format"),
    ],
)
def test_region_errors_say_what_is_wrong(
    api: ApiServer, params: dict[str, object], status: int, words: str
) -> None:
    resp = requests.get(f"{api.url}/api/records/{VOLUME}/region", params=params, timeout=10)
    assert words in error_of(resp, status)


@pytest.fixture(scope="module")
def small_limits(served: Settings) -> ApiServer:
    serve = served.serve.model_copy(update={"max_region_bytes": 10_000, "max_request_bytes": 1000})
    with ApiServer(served.model_copy(update={"serve": serve}), start_jobs=False) as server:
        yield server  # type: ignore[misc]


def test_region_over_the_limit_is_413(small_limits: ApiServer) -> None:
    ok = requests.get(
        f"{small_limits.url}/api/records/{VOLUME}/region",
        params={"z": 0, "y": "0:50", "x": "0:50"},
        timeout=10,
    )
    assert ok.status_code == 200
    resp = requests.get(
        f"{small_limits.url}/api/records/{VOLUME}/region", params={"z": 0}, timeout=10
    )
    assert "max_region_bytes" in error_of(resp, 413)


def test_request_bodies_are_bounded(small_limits: ApiServer) -> None:
    big = b"x" * 5000
    resp = requests.post(f"{small_limits.url}/api/search", data=big, headers=ORIGIN, timeout=10)
    assert "max_request_bytes" in error_of(resp, 413)
    assert resp.headers["access-control-allow-origin"] == "*"
    chunked = requests.post(
        f"{small_limits.url}/api/search",
        data=(big[i : i + 500] for i in range(0, 5000, 500)),
        timeout=10,
    )
    assert "max_request_bytes" in error_of(chunked, 413)


# -- thumbnails -------------------------------------------------------------------------------


def test_thumbnail_is_cached(api: ApiServer, served: Settings) -> None:
    url = f"{api.url}/api/records/{VOLUME}/thumbnail.png"
    first = requests.get(url, timeout=10)
    assert first.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(first.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.shape == (213, 256)  # 160 x 192 fitted to 256
    assert image.std() > 5  # contrast stretched, not a flat grey
    cached = (
        Path(served.storage.data_root)
        / ".cache"
        / "thumbnails"
        / f"{first.headers['x-cache-key']}.png"
    )
    assert cached.read_bytes() == first.content
    second = requests.get(url, timeout=10)
    assert second.content == first.content


# -- OME-Zarr files ---------------------------------------------------------------------------

STORE = "/data/epfl/ca1-hippocampus/volumedata.ome.zarr"


def test_store_metadata_and_ranges(api: ApiServer, served: Settings) -> None:
    meta = requests.get(f"{api.url}{STORE}/zarr.json", headers=ORIGIN, timeout=10)
    assert meta.json()["attributes"]["ome"]["multiscales"]
    assert meta.headers["access-control-allow-origin"] == "*"
    shard = Path(served.storage.data_root) / "epfl/ca1-hippocampus/volumedata.ome.zarr/s0/c/0/0/0"
    whole = shard.read_bytes()
    url = f"{api.url}{STORE}/s0/c/0/0/0"
    head = requests.get(url, headers={"Range": "bytes=0-99", **ORIGIN}, timeout=10)
    assert head.status_code == 206
    assert head.content == whole[:100]
    assert head.headers["content-range"] == f"bytes 0-99/{len(whole)}"
    assert "content-range" in head.headers["access-control-expose-headers"].lower()
    tail = requests.get(url, headers={"Range": "bytes=-40"}, timeout=10)
    assert tail.status_code == 206
    assert tail.content == whole[-40:]
    head_only = requests.head(url, timeout=10)
    assert head_only.status_code == 200 and head_only.content == b""
    assert int(head_only.headers["content-length"]) == len(whole)


def test_missing_chunk_is_a_404_with_cors(api: ApiServer) -> None:
    resp = requests.get(f"{api.url}{STORE}/s0/c/9/9/9", headers=ORIGIN, timeout=10)
    assert "no such file" in error_of(resp, 404)
    assert resp.headers["access-control-allow-origin"] == "*"


def test_cors_preflight_for_range(api: ApiServer) -> None:
    resp = requests.options(
        f"{api.url}{STORE}/zarr.json",
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
        timeout=10,
    )
    assert resp.status_code == 200
    assert "range" in resp.headers["access-control-allow-headers"].lower()


def test_tensorstore_reads_the_sharded_store_over_http(
    api: ApiServer, epfl_replica: EPFLReplica
) -> None:
    import tensorstore as ts

    arr = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "http", "base_url": f"{api.url}{STORE}/s0/"}}
    ).result()
    np.testing.assert_array_equal(arr.read().result(), truth(epfl_replica, "volumedata"))


def _raw_get(api: ApiServer, raw_path: str) -> tuple[int, dict[str, str], bytes]:
    import http.client

    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "raw_path",
    [
        "/data/../catalog.sqlite",
        "/data/epfl/../catalog.sqlite",
        f"{STORE}/../../../../../../etc/passwd",
        f"{STORE}/%2e%2e/%2e%2e/%2e%2e/catalog.sqlite",
        f"{STORE}%2F..%2F..%2F..%2Fcatalog.sqlite",
        f"{STORE}/..%2fvolumedata.json",
        "/data/catalog.sqlite",
        "/data/epfl/ca1-hippocampus/volumedata.json",
        "/data/epfl/ca1-hippocampus/.volumedata.journal",
        f"{STORE}/s0",
        "/data//etc/passwd",
    ],
)
def test_data_never_serves_outside_the_stores(api: ApiServer, raw_path: str) -> None:
    status, headers, body = _raw_get(api, raw_path)
    assert status in (400, 404), (status, body[:200])
    assert headers["content-type"].startswith("application/json")
    assert b"SQLite" not in body and b"root:" not in body


def test_symlink_out_of_the_data_root_is_refused(
    api: ApiServer, served: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    link = Path(served.storage.data_root) / "epfl/ca1-hippocampus/volumedata.ome.zarr/leak"
    link.symlink_to(secret)
    try:
        resp = requests.get(f"{api.url}{STORE}/leak", timeout=10)
        assert "outside the data root" in error_of(resp, 404)
    finally:
        link.unlink()
