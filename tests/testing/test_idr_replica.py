"""The IDR replica's contract, checked with independent clients only.

requests reads the OMERO.web JSON API as it reads idr.openmicroscopy.org; requests and ftplib
fetch the original as from ftp.ebi.ac.uk; tifffile and imagecodecs decode what comes back.
None of emingest's own readers is involved, so a failure here is the replica's.
"""

from __future__ import annotations

import ftplib
import io
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pyftpdlib  # noqa: F401  (a broken install fails here, never skips)
import pytest
import requests
import tifffile

from emingest.testing.idr import IDRReplica

IMAGE = 9846137
XZ = 9846138
DATASET = 10740
BULK = 90001
TIMEOUT = 10


@pytest.fixture(scope="module")
def idr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IDRReplica]:
    with IDRReplica(tmp_path_factory.mktemp("idr")) as replica:
        yield replica


@pytest.fixture(autouse=True)
def clear_faults(idr: IDRReplica) -> Iterator[None]:
    yield
    idr.faults.clear()


def get_json(session: requests.Session, url: str, **kw: Any) -> Any:
    r = session.get(url, timeout=TIMEOUT, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


# -- JSON API ----------------------------------------------------------------------------------


def test_api_versions_and_base(idr: IDRReplica, session: requests.Session) -> None:
    versions = get_json(session, f"{idr.api_url}/api/")
    assert versions["data"] == [{"version": "0", "url:base": f"{idr.url}/api/v0/"}]
    base = get_json(session, f"{idr.api_url}/api/v0/")
    for key in ("url:projects", "url:datasets", "url:images", "url:schema"):
        assert key in base
    assert base["url:images"] == f"{idr.url}/api/v0/m/images/"


def test_image_has_pixels_and_channels(idr: IDRReplica, session: requests.Session) -> None:
    image = get_json(session, f"{idr.api_url}/api/v0/m/images/{IMAGE}/")["data"]
    assert image["@id"] == IMAGE
    assert image["@type"].endswith("#Image")
    assert image["Name"] == "Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif"
    assert {"owner", "group", "permissions"} <= set(image["omero:details"])
    px = image["Pixels"]
    z, y, x = idr.expected_array(IMAGE).shape
    assert (px["SizeX"], px["SizeY"], px["SizeZ"], px["SizeC"], px["SizeT"]) == (x, y, z, 1, 1)
    for axis in "XYZ":
        size = px[f"PhysicalSize{axis}"]
        assert size["Unit"] == "MICROMETER" and size["Symbol"] == "µm"
        assert size["Value"] == pytest.approx(0.02)
    assert px["Type"]["value"] == "uint8"
    assert px["DimensionOrder"]["value"] == "XYZCT"
    assert px["SignificantBits"] == 8
    assert len(px["Channels"]) == 1
    assert image["url:datasets"] == f"{idr.url}/api/v0/m/images/{IMAGE}/datasets/"
    assert image["url:rois"] == f"{idr.url}/api/v0/m/images/{IMAGE}/rois/"


def test_urls_follow_the_request_host(idr: IDRReplica, session: requests.Session) -> None:
    image = get_json(
        session, f"{idr.api_url}/api/v0/m/images/{IMAGE}/", headers={"Host": "idr.example:8080"}
    )["data"]
    assert image["url:datasets"].startswith("http://idr.example:8080/api/v0/m/images/")


def test_xz_sibling_matches_its_file(idr: IDRReplica, session: requests.Session) -> None:
    px = get_json(session, f"{idr.api_url}/api/v0/m/images/{XZ}/")["data"]["Pixels"]
    z, y, x = idr.expected_array(IMAGE).shape
    assert (px["SizeX"], px["SizeY"], px["SizeZ"]) == (x, z, y)  # pages along y, each (z, x)
    assert idr.expected_array(XZ).shape == (y, z, x)


@pytest.mark.parametrize(
    "path", [f"/api/v0/m/images/?dataset={DATASET}", f"/api/v0/m/datasets/{DATASET}/images/"]
)
def test_dataset_image_lists(idr: IDRReplica, session: requests.Session, path: str) -> None:
    body = get_json(session, idr.api_url + path)
    assert body["meta"] == {"offset": 0, "limit": 200, "maxLimit": 500, "totalCount": 2}
    assert [item["@id"] for item in body["data"]] == [IMAGE, XZ]  # ordered by lower(Name)
    for item in body["data"]:
        assert "Channels" not in item["Pixels"]
        assert item["url:image"] == f"{idr.url}/api/v0/m/images/{item['@id']}/"
        assert item["url:datasets"] == f"{idr.url}/api/v0/m/images/{item['@id']}/datasets/"


def test_paging_past_500_with_offset_and_limit(idr: IDRReplica, session: requests.Session) -> None:
    url = f"{idr.api_url}/api/v0/m/datasets/{BULK}/images/"
    first = get_json(session, url)
    assert first["meta"]["limit"] == 200 and len(first["data"]) == 200
    total = first["meta"]["totalCount"]
    assert total > 500
    seen: list[int] = []
    offset = 0
    while offset < total:
        page = get_json(session, url, params={"offset": offset, "limit": 1000})
        assert page["meta"]["limit"] == 500 and page["meta"]["offset"] == offset  # clamped
        assert len(page["data"]) == min(500, total - offset)
        seen += [item["@id"] for item in page["data"]]
        offset += 500
    assert len(seen) == len(set(seen)) == total
    other = get_json(session, f"{idr.api_url}/api/v0/m/images/", params={"dataset": BULK})
    assert other["meta"]["totalCount"] == total


def test_bad_limit_is_a_400_with_a_message(idr: IDRReplica, session: requests.Session) -> None:
    r = session.get(
        f"{idr.api_url}/api/v0/m/images/",
        params={"dataset": str(DATASET), "limit": "ten"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400
    assert "ten" in r.json()["message"]


def test_unknown_objects_are_404_json(idr: IDRReplica, session: requests.Session) -> None:
    r = session.get(f"{idr.api_url}/api/v0/m/images/123/", timeout=TIMEOUT)
    assert r.status_code == 404
    assert r.json()["message"] == "Image 123 not found"
    r = session.get(f"{idr.api_url}/api/v0/m/datasets/5/", timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["message"] == "Dataset 5 not found"


def test_dataset_and_parents(idr: IDRReplica, session: requests.Session) -> None:
    ds = get_json(session, f"{idr.api_url}/api/v0/m/datasets/{DATASET}/")["data"]
    assert ds["@id"] == DATASET and ds["@type"].endswith("#Dataset")
    assert ds["url:images"] == f"{idr.url}/api/v0/m/datasets/{DATASET}/images/"
    parents = get_json(session, f"{idr.api_url}/api/v0/m/images/{IMAGE}/datasets/")
    assert [d["@id"] for d in parents["data"]] == [DATASET]
    projects = get_json(session, ds["url:projects"])["data"]
    assert projects and projects[0]["@type"].endswith("#Project")


# -- webclient / webgateway --------------------------------------------------------------------


@pytest.mark.parametrize("app", ["webclient", "webgateway"])
def test_img_data(idr: IDRReplica, session: requests.Session, app: str) -> None:
    data = get_json(session, f"{idr.api_url}/{app}/imgData/{IMAGE}/")
    z, y, x = idr.expected_array(IMAGE).shape
    assert data["id"] == IMAGE
    assert data["size"] == {"width": x, "height": y, "z": z, "t": 1, "c": 1}
    assert data["pixel_size"] == {"x": 0.02, "y": 0.02, "z": 0.02}  # micrometres
    assert data["meta"]["datasetId"] == DATASET and data["meta"]["pixelsType"] == "uint8"
    assert data["tiles"] is False and data["rdefs"]["defaultZ"] == z // 2
    window = data["channels"][0]["window"]
    assert window["start"] == idr.expected_array(IMAGE).min()
    assert get_json(session, f"{idr.api_url}/webgateway/imgData/{IMAGE}/size/") == data["size"]


def test_original_file_paths_name_the_public_file(
    idr: IDRReplica, session: requests.Session
) -> None:
    paths = get_json(session, f"{idr.api_url}/webgateway/original_file_paths/{IMAGE}/")
    assert set(paths) == {"repo", "client"}
    # as IDR answers: repo is the managed repository's path, client the in-place import path
    (repo,) = paths["repo"]
    assert re.fullmatch(r"[^/]+_\d+/\d{4}-\d{2}/\d{2}/\d{2}-\d{2}-\d{2}\.\d{3}/[^/]+\.tif", repo)
    (client,) = paths["client"]
    assert client.startswith("uod/idr/filesets/idr0086-miron-micrographs/")
    public = "/pub/databases/IDR/" + client.split("uod/idr/filesets/", 1)[1]
    r = session.head(idr.url + public, timeout=TIMEOUT)
    assert r.status_code == 200


def test_rendered_planes_are_jpeg(idr: IDRReplica, session: requests.Session) -> None:
    _, y, x = idr.expected_array(IMAGE).shape
    r = session.get(f"{idr.api_url}/webgateway/render_image/{IMAGE}/3/0/", timeout=TIMEOUT)
    assert r.headers["Content-Type"] == "image/jpeg"
    assert imagecodecs.jpeg8_decode(r.content).shape == (y, x)
    r = session.get(
        f"{idr.api_url}/webgateway/render_image_region/{IMAGE}/3/0/",
        params={"region": "10,20,30,40", "c": "1|85:153$hilo.lut", "m": "c"},
        timeout=TIMEOUT,
    )
    assert imagecodecs.jpeg8_decode(r.content).shape == (40, 30)
    r = session.get(f"{idr.api_url}/webgateway/render_image_region/{IMAGE}/3/0/", timeout=TIMEOUT)
    assert r.status_code == 400 and "tile or region" in r.text
    r = session.get(f"{idr.api_url}/webgateway/render_image/123/0/0/", timeout=TIMEOUT)
    assert r.status_code == 404


# -- the original file -------------------------------------------------------------------------


def check_original(payload: bytes, expected: np.ndarray) -> None:
    assert payload[:4] == b"MM\x00\x2a"  # classic TIFF, big-endian
    with tifffile.TiffFile(io.BytesIO(payload)) as tif:
        assert tif.byteorder == ">" and tif.is_imagej and not tif.is_bigtiff
        meta = tif.imagej_metadata
        assert meta is not None
        assert meta["spacing"] == pytest.approx(0.02)
        assert meta["unit"] == "\\u00B5m"  # ImageJ's literal escape of "µm"
        assert meta["unit"].encode().decode("unicode_escape") == "µm"
        page = tif.pages.first
        assert page.compression == 1 and page.dtype == np.uint8
        assert page.rowsperstrip == page.shape[0]  # one strip per page
        assert page.tags["XResolution"].value == (50, 1)  # 50 px per µm = 20 nm
        assert len(tif.pages) == expected.shape[0]
        np.testing.assert_array_equal(tif.asarray(), expected)


@pytest.mark.parametrize("image_id", [IMAGE, XZ])
def test_original_over_https(idr: IDRReplica, session: requests.Session, image_id: int) -> None:
    r = session.get(idr.file_url(image_id), timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/tiff"
    check_original(r.content, idr.expected_array(image_id))
    assert idr.expected_voxel_size_nm(image_id) == (20.0, 20.0, 20.0)


def test_original_over_ftp(idr: IDRReplica) -> None:
    url = urllib.parse.urlsplit(idr.file_url(IMAGE, "ftp"))
    folder, name = url.path.rsplit("/", 1)
    client = ftplib.FTP()
    client.connect(url.hostname or "127.0.0.1", url.port or 21, timeout=TIMEOUT)
    try:
        client.login()  # anonymous, as ftplib.FTP('ftp.ebi.ac.uk').login()
        client.cwd(folder)
        assert sorted(client.nlst()) == sorted(Path(idr.file_path(i)).name for i in idr.image_ids)
        client.voidcmd("TYPE I")
        size = client.size(name)
        buf = io.BytesIO()
        client.retrbinary(f"RETR {name}", buf.write)
    finally:
        client.close()
    assert size == len(buf.getvalue())
    check_original(buf.getvalue(), idr.expected_array(IMAGE))


def test_range_head_and_416(idr: IDRReplica, session: requests.Session) -> None:
    url = idr.file_url(IMAGE)
    head = session.head(url, timeout=TIMEOUT)
    size = int(head.headers["Content-Length"])
    assert head.headers["Accept-Ranges"] == "bytes" and not head.content
    full = session.get(url, timeout=TIMEOUT).content
    assert len(full) == size
    part = session.get(url, headers={"Range": "bytes=100-299"}, timeout=TIMEOUT)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-299/{size}"
    assert part.content == full[100:300]
    tail = session.get(url, headers={"Range": "bytes=-10"}, timeout=TIMEOUT)
    assert tail.status_code == 206 and tail.content == full[-10:]
    bad = session.get(url, headers={"Range": f"bytes={size}-"}, timeout=TIMEOUT)
    assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{size}"


def test_autoindex_lists_the_originals(idr: IDRReplica, session: requests.Session) -> None:
    folder = idr.file_url(IMAGE).rsplit("/", 1)[0] + "/"
    page = session.get(folder, timeout=TIMEOUT).text
    hrefs = set(re.findall(r'href="([^"?]+)"', page))
    assert {Path(idr.file_path(i)).name for i in idr.image_ids} <= hrefs
