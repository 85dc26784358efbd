"""The EMPIAR replica's contract, checked with independent clients only.

requests, ftplib, html.parser, rosettasciio, mrcfile and ElementTree read the loopback
services the way they read www.ebi.ac.uk/empiar/api and ftp.ebi.ac.uk. None of emingest's own
readers is involved, so a failure here is the replica's.
"""

from __future__ import annotations

import ftplib
import io
import re
import struct
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pyftpdlib  # noqa: F401  (a broken install fails here, never skips)
import pytest
import requests
import rsciio.digitalmicrograph as dm_reader

from emingest.testing.empiar import EmpiarReplica

NS = {"e": "http://pdbe.org/empiar"}
SCALE_UM = 0.0079982504
TIMEOUT = 10


@pytest.fixture(scope="module")
def empiar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmpiarReplica]:
    with EmpiarReplica(tmp_path_factory.mktemp("empiar")) as replica:
        yield replica


@pytest.fixture(autouse=True)
def clear_faults(empiar: EmpiarReplica) -> Iterator[None]:
    yield
    empiar.faults.clear()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxies or netrc from the environment
        yield session


@pytest.fixture
def ftp(empiar: EmpiarReplica) -> Iterator[ftplib.FTP]:
    url = urllib.parse.urlsplit(empiar.files_ftp_url)
    client = ftplib.FTP()
    client.connect(url.hostname or "127.0.0.1", url.port or 21, timeout=TIMEOUT)
    client.login()  # anonymous, as ftplib.FTP('ftp.ebi.ac.uk').login()
    try:
        yield client
    finally:
        client.close()


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def listing(session: requests.Session, url: str) -> list[str]:
    """Entries of an autoindex page, as empiarreader parses them: no sort links, no ``../``."""
    response = session.get(url, timeout=TIMEOUT)
    response.raise_for_status()
    parser = _Hrefs()
    parser.feed(response.text)
    return [
        urllib.parse.unquote(h)
        for h in parser.hrefs
        if not h.startswith("?") and h not in ("../", "/") and not h.startswith("/")
    ]


def ftp_path(empiar: EmpiarReplica, *parts: str) -> str:
    return "/".join([urllib.parse.urlsplit(empiar.files_ftp_url).path, *parts])


def read_dm3(data: bytes, tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / name
    path.write_bytes(data)
    return dm_reader.file_reader(str(path))


# -- the entry API ---------------------------------------------------------------------------


@pytest.mark.parametrize("ident", ["11759", "11759/", "EMPIAR-11759", "EMPIAR-11759/"])
def test_entry_json_has_the_confirmed_fields(
    empiar: EmpiarReplica, http: requests.Session, ident: str
) -> None:
    response = http.get(f"{empiar.api_url}/entry/{ident}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["EMPIAR-11759"]
    entry = body["EMPIAR-11759"]
    assert entry["status"] == "REL"
    assert entry["experiment_type"] == "SBF-SEM"
    assert entry["entry_doi"] == "10.6019/EMPIAR-11759"
    assert isinstance(entry["title"], str) and entry["title"]
    for key in ("deposition_date", "release_date", "update_date"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry[key])
    assert re.fullmatch(r"\d+(\.\d+)? [KMGT]?B", entry["dataset_size"])
    assert entry["authors"] and all(set(a) == {"author"} for a in entry["authors"])
    assert {"name", "order_id", "author_orcid"} <= set(entry["authors"][0]["author"])
    assert {"first_name", "last_name", "email"} <= set(entry["corresponding_author"]["author"])
    assert isinstance(entry["citation"], list) and "title" in entry["citation"][0]

    (imageset,) = entry["imagesets"]
    height, width = empiar.slice_shape
    assert imageset["directory"] == "data"
    assert imageset["header_format"] == imageset["data_format"] == "DM3"
    assert imageset["num_images_or_tilt_series"] == 16
    assert imageset["frames_per_image"] == 1
    assert imageset["voxel_type"] == "UNSIGNED BYTE"
    # Strings, as the live API sends them, matching the files actually served.
    assert imageset["image_width"] == str(width)
    assert imageset["image_height"] == str(height)
    # Ångström: 80 Å = 8 nm, not 80 nm.
    assert imageset["pixel_width"] == imageset["pixel_height"] == 80.0
    assert body == empiar.entry_json("11759")


@pytest.mark.parametrize("ident", ["99999", "EMPIAR-99999", "not-an-id"])
def test_unknown_entry_is_404_with_detail(
    empiar: EmpiarReplica, http: requests.Session, ident: str
) -> None:
    response = http.get(f"{empiar.api_url}/entry/{ident}/", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_bulk_post_returns_the_known_entries(empiar: EmpiarReplica, http: requests.Session) -> None:
    response = http.post(f"{empiar.api_url}/entry/", data='"10000-10499,11759"', timeout=TIMEOUT)
    assert response.status_code == 200
    assert set(response.json()) == {"EMPIAR-10310", "EMPIAR-11759"}


def test_api_obeys_injected_503(empiar: EmpiarReplica, http: requests.Session) -> None:
    empiar.faults.fail_first = 1
    first = http.get(f"{empiar.api_url}/entry/11759/", timeout=TIMEOUT)
    assert first.status_code == 503
    assert "Retry-After" in first.headers
    assert http.get(f"{empiar.api_url}/entry/11759/", timeout=TIMEOUT).status_code == 200


# -- listings ----------------------------------------------------------------------------------


def test_autoindex_lists_the_entry_and_all_slices(
    empiar: EmpiarReplica, http: requests.Session
) -> None:
    top = listing(http, f"{empiar.files_http_url}/11759/")
    assert top == ["11759.xml", "data/", "trakem2/"]
    page = http.get(f"{empiar.files_http_url}/11759/data/", timeout=TIMEOUT).text
    assert 'href="?C=N;O=D"' in page and 'href="../"' in page
    names = listing(http, f"{empiar.files_http_url}/11759/data/")
    expected = [f"F57-8_test1_3VBSED_slice_{z:04d}.dm3" for z in range(16)]
    assert names == expected == empiar.dm3_names


def test_trakem2_folder_has_a_nested_subfolder(
    empiar: EmpiarReplica, http: requests.Session
) -> None:
    found: list[str] = []
    pending = ["trakem2/"]
    while pending:
        folder = pending.pop()
        for name in listing(http, f"{empiar.files_http_url}/11759/{folder}"):
            (pending if name.endswith("/") else found).append(folder + name)
    assert "trakem2/F57-8_test1.xml" in found
    nested = [f for f in found if f.count("/") >= 2]
    assert nested, found
    head = http.head(f"{empiar.files_http_url}/11759/{nested[0]}", timeout=TIMEOUT)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0


def test_ftp_tree_mirrors_http(empiar: EmpiarReplica, ftp: ftplib.FTP) -> None:
    names = ftp.nlst(ftp_path(empiar, "11759", "data"))
    assert sorted(Path(n).name for n in names) == empiar.dm3_names
    top = {Path(n).name for n in ftp.nlst(ftp_path(empiar, "11759"))}
    assert top == {"11759.xml", "data", "trakem2"}


def test_omitted_file_is_missing_from_both_listings_but_still_served(
    empiar: EmpiarReplica, http: requests.Session, ftp: ftplib.FTP
) -> None:
    gone = empiar.dm3_names[7]
    empiar.faults.omit_from_listing = {gone}
    html_names = listing(http, f"{empiar.files_http_url}/11759/data/")
    ftp_names = [Path(n).name for n in ftp.nlst(ftp_path(empiar, "11759", "data"))]
    assert gone not in html_names and len(html_names) == 15
    assert gone not in ftp_names and len(ftp_names) == 15
    # The load-balanced autoindex forgets names, not files.
    response = http.get(f"{empiar.files_http_url}/11759/data/{gone}", timeout=TIMEOUT)
    assert response.status_code == 200


# -- the DM3 slices ------------------------------------------------------------------------------


def check_slice(signals: list[dict[str, Any]], empiar: EmpiarReplica, z: int) -> None:
    # The thumbnail is listed under Thumbnails, so rosettasciio returns the image alone.
    (signal,) = signals
    data = signal["data"]
    height, width = empiar.slice_shape
    assert data.shape == (height, width)
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, empiar.expected_stack()[z])
    axes = {a["name"]: a for a in signal["axes"]}
    assert [a["name"] for a in signal["axes"]] == ["y", "x"]
    for name in ("y", "x"):
        assert axes[name]["scale"] == pytest.approx(SCALE_UM, rel=1e-7)
        assert axes[name]["units"] == "µm"
    assert axes["y"]["size"] == height and axes["x"]["size"] == width
    # rosettasciio keeps the chosen image's tags under ImageList.TagGroup0 whatever its index.
    tags = signal["original_metadata"]["ImageList"]["TagGroup0"]["ImageTags"]
    assert tags["SBFSEM"]["Record"]["Slice thickness"] == 50.0
    z_info = tags["Meta Data"]["Dimension info"]["TagGroup2"]
    assert (z_info["Scale"], z_info["Units"]) == (50.0, "nm")
    assert signal["original_metadata"]["Thumbnails"]["TagGroup0"]["ImageIndex"] == 0
    voxel = empiar.expected_voxel_size_nm()
    assert voxel == pytest.approx((50.0, axes["y"]["scale"] * 1000, axes["x"]["scale"] * 1000))
    assert voxel == pytest.approx((50.0, 8.0, 8.0), abs=0.01)


@pytest.mark.parametrize("z", [0, 7, 15])
def test_dm3_over_http_reads_with_rosettasciio(
    empiar: EmpiarReplica, http: requests.Session, tmp_path: Path, z: int
) -> None:
    name = empiar.dm3_names[z]
    response = http.get(f"{empiar.files_http_url}/11759/data/{name}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Accept-Ranges"] == "bytes"
    data = response.content
    assert int(response.headers["Content-Length"]) == len(data)
    version, root_len, little = struct.unpack(">lLl", data[:12])
    assert (version, root_len, little) == (3, len(data) - 16, 1)
    assert data[-8:] == b"\x00" * 8
    check_slice(read_dm3(data, tmp_path, name), empiar, z)


def test_dm3_over_ftp_reads_with_rosettasciio(
    empiar: EmpiarReplica, ftp: ftplib.FTP, tmp_path: Path
) -> None:
    z = 3
    name = empiar.dm3_names[z]
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {ftp_path(empiar, '11759', 'data', name)}", buf.write)
    assert buf.getvalue() == empiar.file_path("11759", name).read_bytes()
    check_slice(read_dm3(buf.getvalue(), tmp_path, name), empiar, z)


def test_range_get_on_a_dm3(empiar: EmpiarReplica, http: requests.Session) -> None:
    name = empiar.dm3_names[5]
    url = f"{empiar.files_http_url}/11759/data/{name}"
    whole = empiar.file_path("11759", name).read_bytes()
    size = len(whole)
    head = http.head(url, timeout=TIMEOUT)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == size

    part = http.get(url, headers={"Range": "bytes=100-1099"}, timeout=TIMEOUT)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-1099/{size}"
    assert part.content == whole[100:1100]

    tail = http.get(url, headers={"Range": "bytes=-8"}, timeout=TIMEOUT)
    assert tail.status_code == 206 and tail.content == whole[-8:]

    beyond = http.get(url, headers={"Range": f"bytes={size}-"}, timeout=TIMEOUT)
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"


# -- the MRC entry ---------------------------------------------------------------------------


def test_mrc_entry_volumes_read_with_mrcfile(
    empiar: EmpiarReplica, http: requests.Session, tmp_path: Path
) -> None:
    entry = http.get(f"{empiar.api_url}/entry/EMPIAR-10310/", timeout=TIMEOUT).json()
    (imageset,) = entry["EMPIAR-10310"]["imagesets"]
    assert imageset["data_format"] == imageset["header_format"] == "MRC"
    expected = empiar.expected_volumes("10310")
    assert listing(http, f"{empiar.files_http_url}/10310/data/") == sorted(expected)
    assert imageset["num_images_or_tilt_series"] == len(expected)
    for name, volume in expected.items():
        response = http.get(f"{empiar.files_http_url}/10310/data/{name}", timeout=TIMEOUT)
        assert response.status_code == 200
        path = tmp_path / name
        path.write_bytes(response.content)
        with mrcfile.open(path, permissive=False) as mrc:
            assert mrc.data.ndim == 3
            np.testing.assert_array_equal(mrc.data, volume)
            vs = mrc.voxel_size
            _, ny, nx = mrc.data.shape
        # API: Å and strings, like the DM3 entry.
        assert float(vs.x) == pytest.approx(imageset["pixel_width"])
        assert float(vs.y) == pytest.approx(imageset["pixel_height"])
        assert (imageset["image_width"], imageset["image_height"]) == (str(nx), str(ny))
        assert empiar.expected_voxel_size_nm("10310") == pytest.approx(
            (float(vs.z) / 10, float(vs.y) / 10, float(vs.x) / 10)
        )


# -- the entry XML -------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["11759", "10310"])
def test_entry_xml_parses_and_agrees_with_the_json(
    empiar: EmpiarReplica, http: requests.Session, entry: str
) -> None:
    response = http.get(f"{empiar.files_http_url}/{entry}/{entry}.xml", timeout=TIMEOUT)
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "{http://pdbe.org/empiar}entry"
    assert root.get("accessionCode") == f"EMPIAR-{entry}"
    record = http.get(f"{empiar.api_url}/entry/{entry}/", timeout=TIMEOUT).json()[f"EMPIAR-{entry}"]
    assert root.findtext("e:admin/e:title", namespaces=NS) == record["title"]
    assert root.findtext("e:admin/e:currentStatus", namespaces=NS) == "REL"
    assert root.findtext("e:admin/e:experimentType", namespaces=NS) == record["experiment_type"]
    assert (
        root.findtext("e:admin/e:keyDates/e:releaseDate", namespaces=NS) == record["release_date"]
    )
    size = root.find("e:admin/e:datasetSize", NS)
    assert size is not None
    assert f"{size.text} {size.get('units')}" == record["dataset_size"]
    (imageset,) = record["imagesets"]
    xml_set = root.find("e:imageSet", NS)
    assert xml_set is not None
    assert xml_set.findtext("e:dataFormat", namespaces=NS) == imageset["data_format"]
    assert (
        int(xml_set.findtext("e:numImagesOrTiltSeries", namespaces=NS) or -1)
        == (imageset["num_images_or_tilt_series"])
    )
    dims = xml_set.find("e:dimensions", NS)
    assert dims is not None
    assert dims.findtext("e:imageWidth", namespaces=NS) == imageset["image_width"]
    assert dims.findtext("e:imageHeight", namespaces=NS) == imageset["image_height"]
    assert float(dims.findtext("e:pixelWidth", namespaces=NS) or "nan") == imageset["pixel_width"]
