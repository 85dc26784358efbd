"""``emingest serve`` over an ``s3://`` data root (issue 15), under a real uvicorn: records,
regions, thumbnails, the report and ``/data`` (Range, CORS) stream from moto's S3 server."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import requests

from emingest.serve.loopback import ApiServer
from emingest.testing.s3_root import S3Ingested

ORIGIN = {"Origin": "http://viewer.example"}


@pytest.fixture
def s3_api(s3_ingested: S3Ingested) -> Iterator[tuple[ApiServer, S3Ingested]]:
    with ApiServer(s3_ingested.settings, start_jobs=False) as server:
        yield server, s3_ingested


def test_records_regions_and_thumbnail(s3_api: tuple[ApiServer, S3Ingested]) -> None:
    api, data = s3_api
    page = requests.get(f"{api.url}/api/records", timeout=10).json()
    assert page["total"] == 1
    [item] = page["items"]
    assert item["id"] == data.id and item["record_path"] == data.record_url
    assert item["data_url"] == f"/data/{data.store_key}"
    assert item["neuroglancer_source"] == f"zarr3://{api.url}/data/{data.store_key}/"

    one = requests.get(f"{api.url}/api/records/{data.id}", timeout=10).json()
    assert [lv["path"] for lv in one["levels"]][:2] == ["s0", "s1"]
    assert one["levels"][0]["shape"] == list(data.array.shape)

    resp = requests.get(
        f"{api.url}/api/records/{data.id}/region",
        params={"z": "3:7", "y": "10:60", "x": "5:80"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    np.testing.assert_array_equal(np.load(io.BytesIO(resp.content)), data.array[3:7, 10:60, 5:80])

    thumb = requests.get(f"{api.url}/api/records/{data.id}/thumbnail.png", timeout=10)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    cached = (
        data.settings.storage.local_root
        / ".cache"
        / "thumbnails"
        / f"{thumb.headers['x-cache-key']}.png"
    )
    assert cached.read_bytes() == thumb.content

    report = requests.get(f"{api.url}/api/report", timeout=10).json()
    assert report["data_root"] == data.root.url
    assert report["status_by_source"]["local"]["complete"] == 1


def test_data_streams_objects_with_ranges_and_cors(s3_api: tuple[ApiServer, S3Ingested]) -> None:
    api, data = s3_api
    store = f"{api.url}/data/{data.store_key}"
    meta = requests.get(f"{store}/zarr.json", headers=ORIGIN, timeout=10)
    assert meta.status_code == 200 and meta.headers["content-type"] == "application/json"
    assert meta.json()["attributes"]["ome"]["multiscales"]
    assert meta.headers["access-control-allow-origin"] == "*"

    whole = data.object(f"{data.store_key}/s0/c/0/0/0")  # a shard, read with boto3
    url = f"{store}/s0/c/0/0/0"
    full = requests.get(url, timeout=10)
    assert full.status_code == 200 and full.content == whole
    assert full.headers["accept-ranges"] == "bytes"
    head = requests.get(url, headers={"Range": "bytes=0-99", **ORIGIN}, timeout=10)
    assert head.status_code == 206
    assert head.content == whole[:100]
    assert head.headers["content-range"] == f"bytes 0-99/{len(whole)}"
    assert "content-range" in head.headers["access-control-expose-headers"].lower()
    tail = requests.get(url, headers={"Range": "bytes=-40"}, timeout=10)
    assert tail.status_code == 206 and tail.content == whole[-40:]
    middle = requests.get(url, headers={"Range": "bytes=50-"}, timeout=10)
    assert middle.status_code == 206 and middle.content == whole[50:]
    past = requests.get(url, headers={"Range": f"bytes={len(whole)}-"}, timeout=10)
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(whole)}"
    head_only = requests.head(url, timeout=10)
    assert head_only.status_code == 200 and head_only.content == b""
    assert int(head_only.headers["content-length"]) == len(whole)

    missing = requests.get(f"{store}/s0/c/9/9/9", headers=ORIGIN, timeout=10)
    assert missing.status_code == 404 and "no such file" in missing.json()["error"]
    assert missing.headers["access-control-allow-origin"] == "*"


def test_data_refuses_what_is_not_a_store_file(s3_api: tuple[ApiServer, S3Ingested]) -> None:
    api, data = s3_api
    record_key = data.record_url.removeprefix(data.root.url + "/")
    folder = record_key.rsplit("/", 1)[0]
    for path in (
        f"/data/{record_key}",  # a record, not a store file
        f"/data/{folder}/.{record_key.rsplit('/', 1)[1].removesuffix('.json')}.journal",
        f"/data/{data.store_key}/s0",  # a folder (a prefix) is no object
        f"/data/{data.store_key}/%2e%2e/%2e%2e/{record_key.rsplit('/', 1)[1]}",
        f"/data/{data.store_key}%2F..%2F..%2Fx.json",
    ):
        resp = requests.get(f"{api.url}{path}", timeout=10)
        assert resp.status_code in (400, 404), (path, resp.status_code)
        assert resp.headers["content-type"].startswith("application/json")


def test_tensorstore_reads_a_level_through_data(s3_api: tuple[ApiServer, S3Ingested]) -> None:
    import tensorstore as ts

    api, data = s3_api
    base = f"{api.url}/data/{data.store_key}"
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "http", "base_url": f"{base}/s0/"}})
    np.testing.assert_array_equal(arr.result().read().result(), data.array)
    coarse = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "http", "base_url": f"{base}/s1/"}}
    ).result()
    assert coarse.shape == (10, 35, 45)


def test_large_objects_are_streamed_in_ranged_pieces(
    s3_api: tuple[ApiServer, S3Ingested], monkeypatch: pytest.MonkeyPatch
) -> None:
    from emingest.serve import data_files

    api, data = s3_api
    monkeypatch.setattr(data_files, "STREAM_PIECE", 64)
    whole = data.object(f"{data.store_key}/s0/c/0/0/0")
    url = f"{api.url}/data/{data.store_key}/s0/c/0/0/0"
    full = requests.get(url, timeout=10)
    assert full.status_code == 200 and full.content == whole
    assert int(full.headers["content-length"]) == len(whole)
    part = requests.get(url, headers={"Range": "bytes=10-300"}, timeout=10)
    assert part.status_code == 206 and part.content == whole[10:301]
