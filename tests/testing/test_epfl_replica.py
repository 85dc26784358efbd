"""The EPFL replica's contract, checked with independent clients only (requests, tifffile).

documents.epfl.ch serves five plain TIFFs from a folder whose name starts with a space; the
files are classic uncompressed stacks with 8 KiB strips and no calibration.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import requests
import tifffile

from emingest.testing.epfl import EPFLReplica
from emingest.testing.synthetic import CLASS_ORGANELLE, SyntheticEM

NAMES = ["volumedata", "training", "training_groundtruth", "testing", "testing_groundtruth"]
TIMEOUT = 10


@pytest.fixture(scope="module")
def epfl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EPFLReplica]:
    with EPFLReplica(tmp_path_factory.mktemp("epfl")) as replica:
        yield replica


@pytest.fixture(autouse=True)
def clear_faults(epfl: EPFLReplica) -> Iterator[None]:
    yield
    epfl.faults.clear()


def test_urls_carry_the_encoded_leading_space(epfl: EPFLReplica) -> None:
    assert epfl.base_url.endswith(
        "/groups/c/cv/cvlab-unit/www/data/%20ElectronMicroscopy_Hippocampus"
    )
    assert epfl.file_names == [f"{n}.tif" for n in NAMES]


@pytest.mark.parametrize("name", NAMES)
def test_head_gives_the_length(epfl: EPFLReplica, session: requests.Session, name: str) -> None:
    r = session.head(f"{epfl.base_url}/{name}.tif", timeout=TIMEOUT)
    assert r.status_code == 200 and not r.content
    assert int(r.headers["Content-Length"]) == epfl.file_path(name).stat().st_size
    assert r.headers["Content-Type"] == "image/tiff"


@pytest.mark.parametrize("name", NAMES)
def test_files_are_plain_classic_stacks(
    epfl: EPFLReplica, session: requests.Session, name: str
) -> None:
    r = session.get(epfl.file_url(name), timeout=TIMEOUT)
    assert r.status_code == 200
    expected = epfl.expected_array(name)
    with tifffile.TiffFile(io.BytesIO(r.content)) as tif:
        assert not tif.is_bigtiff and not tif.is_imagej and not tif.is_ome
        assert len(tif.pages) == expected.shape[0]
        for page in tif.pages:
            assert isinstance(page, tifffile.TiffPage)
            assert page.compression == 1 and page.dtype == np.uint8
            width = page.shape[1]
            assert page.rowsperstrip == min(8192 // width, page.shape[0])  # libtiff's 8 KiB
            assert max(page.databytecounts) <= 8192
            assert page.tags["XResolution"].value == (1, 1)
            assert page.tags["ResolutionUnit"].value == 2  # inch: no calibration
        np.testing.assert_array_equal(tif.asarray(), expected)
    assert epfl.expected_voxel_size_nm(name) is None


def test_default_test_shapes(epfl: EPFLReplica) -> None:
    assert epfl.expected_array("volumedata").shape == (48, 96, 128)
    assert epfl.expected_array("training.tif").shape == (16, 48, 64)
    assert epfl.expected_array("testing_groundtruth").shape == (16, 48, 64)


@pytest.mark.parametrize("volume", ["training", "testing"])
def test_ground_truth_is_the_organelle_mask(epfl: EPFLReplica, volume: str) -> None:
    image = epfl.expected_array(volume)
    truth = epfl.expected_array(f"{volume}_groundtruth")
    assert set(np.unique(truth)) == {0, 255}
    seed = {"training": 1, "testing": 2}[volume]
    classes = SyntheticEM(image.shape, "uint8", seed).classes(
        (slice(None), slice(None), slice(None))
    )
    np.testing.assert_array_equal(truth == 255, classes == CLASS_ORGANELLE)
    assert image[truth == 255].mean() < image[truth == 0].mean()  # organelles are darker


def test_range_on(epfl: EPFLReplica, session: requests.Session) -> None:
    url = epfl.file_url("volumedata")
    size = epfl.file_path("volumedata").stat().st_size
    r = session.get(url, headers={"Range": "bytes=8-15"}, timeout=TIMEOUT)
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 8-15/{size}"
    assert r.content == epfl.file_path("volumedata").read_bytes()[8:16]
    bad = session.get(url, headers={"Range": f"bytes={size + 10}-"}, timeout=TIMEOUT)
    assert bad.status_code == 416


def test_range_off_streams_the_whole_file(epfl: EPFLReplica, session: requests.Session) -> None:
    epfl.faults.range_support = False
    url = epfl.file_url("training")
    head = session.head(url, timeout=TIMEOUT)
    assert "Accept-Ranges" not in head.headers
    r = session.get(url, headers={"Range": "bytes=8-15"}, timeout=TIMEOUT)
    assert r.status_code == 200 and "Content-Range" not in r.headers
    assert r.content == epfl.file_path("training").read_bytes()


def test_no_listing_and_404(epfl: EPFLReplica, session: requests.Session) -> None:
    assert session.get(f"{epfl.base_url}/", timeout=TIMEOUT).status_code == 403
    assert session.get(f"{epfl.base_url}/nope.tif", timeout=TIMEOUT).status_code == 404
    # without the leading space the folder does not exist
    plain = epfl.base_url.replace("%20", "")
    assert session.get(f"{plain}/training.tif", timeout=TIMEOUT).status_code == 404
