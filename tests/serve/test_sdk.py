"""The Python SDK: ``emingest.open`` / ``emingest.catalog`` locally, ``emingest.Client`` over a
real server; both must give the archive's voxels."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import emingest
from emingest.config import Settings
from emingest.errors import EntryNotFoundError, RequestError, RequestTooLargeError
from emingest.serve.loopback import ApiServer
from emingest.testing.epfl import EPFLReplica

VOLUME = "epfl/ca1-hippocampus/volumedata"


@pytest.fixture(scope="module")
def client(api: ApiServer) -> emingest.Client:
    with emingest.Client(api.url) as c:
        yield c  # type: ignore[misc]


@pytest.fixture(params=["local", "remote"])
def opener(request: pytest.FixtureRequest, served: Settings, client: emingest.Client):  # type: ignore[no-untyped-def]
    if request.param == "local":
        return lambda rid: emingest.open(rid, settings=served)
    return client.open


def test_import_emingest_stays_light() -> None:
    code = (
        "import sys, emingest; heavy = [m for m in ('fastapi', 'tensorstore', 'torch', 'requests',"
        " 'emingest.volume') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_read_equals_the_archive(opener, epfl_replica: EPFLReplica) -> None:  # type: ignore[no-untyped-def]
    vol = opener(VOLUME)
    truth = tifffile.imread(epfl_replica.folder / "volumedata.tif")
    assert vol.shape == (24, 160, 192)
    assert vol.record.sha256 and vol.record.is_complete
    assert [lv.path for lv in vol.levels][:2] == ["s0", "s1"]
    np.testing.assert_array_equal(vol.read((3, slice(10, 50), None)), truth[3:4, 10:50])
    np.testing.assert_array_equal(vol.read(), truth)
    assert vol.read(level=1).shape == vol.levels[1].shape
    with pytest.raises(RequestError, match="outside"):
        vol.read((99,))


def test_labels_and_thumbnail(opener) -> None:  # type: ignore[no-untyped-def]
    vol = opener("epfl/ca1-hippocampus/training")
    labels = vol.labels
    assert list(labels) == ["training_groundtruth"]
    mask = labels["training_groundtruth"].read()
    assert mask.shape == vol.shape and set(np.unique(mask)) <= {0, 255}
    thumb = vol.thumbnail(128)
    assert thumb.dtype == np.uint8 and max(thumb.shape) == 128 and thumb.std() > 5


def test_dask_and_xarray_in_nanometres(opener, epfl_replica: EPFLReplica) -> None:  # type: ignore[no-untyped-def]
    vol = opener(VOLUME)
    arr = vol.to_dask(0)
    truth = tifffile.imread(epfl_replica.folder / "volumedata.tif")
    np.testing.assert_array_equal(arr[2:5].compute(), truth[2:5])
    xa = vol.to_xarray(1)
    assert xa.dims == ("z", "y", "x")
    assert xa["x"].attrs["units"] == "nm"
    step = float(xa["x"][1] - xa["x"][0])
    assert step == pytest.approx(10.0)  # 5 nm voxels, level 1 is 2x
    # level 1 voxel centres sit halfway between the level-0 voxels they average: 2.5 + 10 i nm
    assert float(xa["x"][0]) == pytest.approx(2.5)
    picked = xa.sel(z=2.5, y=12.5, x=22.5).values
    assert picked == vol.read((0, 1, 2), 1)[0, 0, 0]


def test_catalog_filters_locally_and_remotely(served: Settings, client: emingest.Client) -> None:
    local = emingest.catalog(settings=served, source="epfl", max_shape=(20, 100, 100))
    remote = client.catalog(source="epfl", max_shape=(20, 100, 100))
    assert [r.id for r in local] == [r.id for r in remote] and len(local) == 4
    assert local[0].record["sha256"] == remote[0].record["sha256"]
    assert emingest.catalog(settings=served, source="idr") == []


def test_unknown_id_names_the_known_ones(served: Settings, client: emingest.Client) -> None:
    with pytest.raises(EntryNotFoundError, match="volumedata"):
        emingest.open("epfl/ca1-hippocampus/nope", settings=served)
    with pytest.raises(EntryNotFoundError, match="404"):
        client.open("epfl/ca1-hippocampus/nope")


def test_client_maps_limits_to_errors(small_client: emingest.Client) -> None:
    vol = small_client.open(VOLUME)
    with pytest.raises(RequestTooLargeError, match="max_region_bytes"):
        vol.read()


@pytest.fixture(scope="module")
def small_client(served: Settings):  # type: ignore[no-untyped-def]
    serve = served.serve.model_copy(update={"max_region_bytes": 1000})
    with ApiServer(served.model_copy(update={"serve": serve}), start_jobs=False) as srv:
        yield emingest.Client(srv.url)


def test_volumes_pickle_without_handles(opener) -> None:  # type: ignore[no-untyped-def]
    vol = opener(VOLUME)
    first = vol.read((0,))
    copy = pickle.loads(pickle.dumps(vol))
    np.testing.assert_array_equal(copy.read((0,)), first)
