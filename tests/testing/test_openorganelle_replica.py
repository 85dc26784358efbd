"""The OpenOrganelle replica's contract, checked with independent clients only.

s3fs, zarr-python, boto3, tensorstore and requests read the loopback bucket the way they read the
real ``s3://janelia-cosem-datasets``: anonymous, path-style, region us-east-1. None of
emingest's own readers is involved, so a failure here is the replica's.
"""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto  # noqa: F401  (a broken install fails here, never skips)
import numpy as np
import pytest
import requests
import s3fs
import tensorstore as ts
import zarr
from botocore import UNSIGNED
from botocore.config import Config
from numcodecs import Zstd

from emingest.testing.http import Faults
from emingest.testing.openorganelle import OpenOrganelleReplica, downsample_mean

SIBLING = "jrc_cos7-1a"


@pytest.fixture(scope="module", autouse=True)
def no_aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No credentials, profiles, config files, instance metadata or proxies to fall back on."""
    missing = str(tmp_path_factory.mktemp("aws") / "missing")
    with pytest.MonkeyPatch.context() as mp:
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_CONFIG_FILE", missing)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="module")
def oo(no_aws_environment: None) -> Iterator[OpenOrganelleReplica]:
    with OpenOrganelleReplica(extra_datasets=(SIBLING,)) as replica:
        yield replica


@pytest.fixture(
    scope="module",
    params=[("/", True), ("/", False), (".", True), (".", False)],
    ids=["slash-consolidated", "slash-plain", "dot-consolidated", "dot-plain"],
)
def variant(
    request: pytest.FixtureRequest, no_aws_environment: None
) -> Iterator[OpenOrganelleReplica]:
    separator, consolidated = request.param
    with OpenOrganelleReplica(dimension_separator=separator, consolidated=consolidated) as replica:
        yield replica


@pytest.fixture
def faults(oo: OpenOrganelleReplica) -> Iterator[Faults]:
    oo.faults.clear()
    yield oo.faults
    oo.faults.clear()


def s3fs_for(replica: OpenOrganelleReplica) -> Any:
    return s3fs.S3FileSystem(
        anon=True,
        client_kwargs={"endpoint_url": replica.endpoint_url, "region_name": "us-east-1"},
        skip_instance_cache=True,
        use_listings_cache=False,
    )


def boto3_for(replica: OpenOrganelleReplica) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=replica.endpoint_url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )


def raw() -> requests.Session:
    """A plain HTTP client that ignores proxy settings."""
    session = requests.Session()
    session.trust_env = False
    return session


def key_url(replica: OpenOrganelleReplica, path: str) -> str:
    return f"{replica.endpoint_url}/{replica.bucket}/{replica.dataset}/{path}"


# -- listing and metadata (s3fs) ----------------------------------------------------------------


def test_s3fs_lists_the_dataset_anonymously(oo: OpenOrganelleReplica) -> None:
    fs = s3fs_for(oo)
    top = f"{oo.bucket}/{oo.dataset}"
    assert set(fs.ls(top)) == {f"{top}/thumbnail.jpg", f"{top}/{oo.dataset}.zarr"}
    recon = f"{top}/{oo.dataset}.zarr/recon-2"
    assert set(fs.ls(recon)) == {f"{recon}/.zgroup", f"{recon}/em", f"{recon}/labels"}
    em = f"{top}/{oo.em_array_path}"
    assert {p.rsplit("/", 1)[-1] for p in fs.ls(em)} == {".zgroup", ".zattrs", "s0", "s1", "s2"}
    assert fs.cat(f"{top}/thumbnail.jpg")[:3] == b"\xff\xd8\xff"
    assert {p.rsplit("/", 1)[-1] for p in fs.ls(oo.bucket)} == {oo.dataset, SIBLING}


def test_zattrs_are_the_live_stores(oo: OpenOrganelleReplica) -> None:
    fs = s3fs_for(oo)
    em = f"{oo.bucket}/{oo.dataset}/{oo.em_array_path}"
    attrs = json.loads(fs.cat(f"{em}/.zattrs"))
    assert attrs == oo.zattrs
    (ms,) = attrs["multiscales"]
    assert (ms["version"], ms["name"], ms["type"], ms["metadata"]) == ("0.4", "", None, None)
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert {a["unit"] for a in ms["axes"]} == {"nanometer"}
    assert ms["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]
    transforms = [d["coordinateTransformations"] for d in ms["datasets"]]
    assert [d["path"] for d in ms["datasets"]] == ["s0", "s1", "s2"]
    assert transforms[0] == [
        {"type": "scale", "scale": [2.96, 4.0, 4.0]},
        {"type": "translation", "translation": [0.0, 0.0, 0.0]},
    ]
    assert transforms[2][0]["scale"] == [11.840000000000002, 16.0, 16.0]  # the live float
    for before, after in itertools.pairwise(transforms):
        scale, shift = before[0]["scale"], before[1]["translation"]
        assert after[0]["scale"] == pytest.approx([2 * s for s in scale])
        assert after[1]["translation"] == pytest.approx(
            [t + s / 2 for t, s in zip(shift, scale, strict=True)]
        )


def test_zarray_documents(oo: OpenOrganelleReplica) -> None:
    fs = s3fs_for(oo)
    em = f"{oo.bucket}/{oo.dataset}/{oo.em_array_path}"
    shapes = [[70, 150, 160], [35, 75, 80], [17, 37, 40]]
    for n, shape in enumerate(shapes):
        assert json.loads(fs.cat(f"{em}/s{n}/.zarray")) == {
            "zarr_format": 2,
            "shape": shape,
            "chunks": [64, 64, 64],
            "dtype": "<i2",
            "compressor": {"id": "zstd", "level": 1},
            "fill_value": 0,
            "order": "C",
            "filters": None,
            "dimension_separator": "/",
        }
        assert oo.expected_level(n).shape == tuple(shape)
    assert json.loads(fs.cat(f"{oo.bucket}/{oo.dataset}/{oo.dataset}.zarr/.zgroup")) == {
        "zarr_format": 2
    }


def test_levels_are_rounded_means_of_the_level_below(oo: OpenOrganelleReplica) -> None:
    s0, s1 = oo.expected_level(0), oo.expected_level(1)
    assert s0.dtype == np.int16 and s0.std() > 0
    assert s1[3, 5, 7] == np.rint(s0[6:8, 10:12, 14:16].astype(np.float64).mean())
    assert np.array_equal(downsample_mean(s1), oo.expected_level(2))


# -- zarr-python 3 -----------------------------------------------------------------------------


def test_zarr_python_reads_every_level(variant: OpenOrganelleReplica) -> None:
    fs = s3fs_for(variant)
    zarr_root = f"{variant.bucket}/{variant.dataset}/{variant.dataset}.zarr"
    assert fs.exists(f"{zarr_root}/.zmetadata") == variant.consolidated
    store = zarr.storage.FsspecStore.from_url(
        f"s3://{zarr_root}", storage_options=variant.storage_options, read_only=True
    )
    group = zarr.open_group(
        store, mode="r", zarr_format=2, use_consolidated=True if variant.consolidated else None
    )
    em = group["recon-2/em/fibsem-int16"]
    assert em.attrs.asdict() == variant.zattrs
    for n in range(variant.levels):
        array = em[f"s{n}"]
        assert array.dtype == np.int16 and array.chunks == (64, 64, 64)
        assert array.metadata.dimension_separator == variant.dimension_separator
        np.testing.assert_array_equal(array[:], variant.expected_level(n))
    labels = group["recon-2/labels/mito_seg/s0"]
    assert labels.dtype == np.uint64
    np.testing.assert_array_equal(labels[:], variant.expected_labels())
    other = "0.0.0" if variant.dimension_separator == "/" else "0/0/0"
    assert not fs.exists(f"{zarr_root}/recon-2/em/fibsem-int16/s0/{other}")


def test_zarr_python_opens_an_s3_url(oo: OpenOrganelleReplica) -> None:
    array = zarr.open_array(
        oo.s3_url(f"{oo.em_array_path}/s0"),
        mode="r",
        zarr_format=2,
        storage_options={"anon": True, "client_kwargs": {"endpoint_url": oo.endpoint_url}},
    )
    edge = np.s_[60:70, 120:150, 100:160]  # crosses into the ragged last chunk of every axis
    np.testing.assert_array_equal(array[edge], oo.expected_level(0)[edge])


def test_sibling_dataset_uint8(oo: OpenOrganelleReplica) -> None:
    group = zarr.open_group(
        f"s3://{oo.bucket}/{SIBLING}/{SIBLING}.zarr",
        mode="r",
        zarr_format=2,
        storage_options=oo.storage_options,
    )
    array = group["recon-1/em/fibsem-uint8/s0"]
    assert array.dtype == np.uint8 and array.chunks == (64, 128, 128)
    np.testing.assert_array_equal(array[:], oo.expected_level(0, SIBLING))


# -- raw objects (boto3, requests) ---------------------------------------------------------------


def test_edge_chunks_are_stored_whole_and_padded(oo: OpenOrganelleReplica) -> None:
    s3 = boto3_for(oo)
    key = f"{oo.dataset}/{oo.em_array_path}/s0/1/2/2"
    body = s3.get_object(Bucket=oo.bucket, Key=key)["Body"].read()
    chunk = np.frombuffer(Zstd().decode(body), dtype="<i2").reshape(64, 64, 64)
    np.testing.assert_array_equal(chunk[:6, :22, :32], oo.expected_level(0)[64:, 128:, 128:])
    assert not chunk[6:].any() and not chunk[:, 22:].any() and not chunk[:, :, 32:].any()


def test_boto3_unsigned_head_range_and_paging(oo: OpenOrganelleReplica) -> None:
    s3 = boto3_for(oo)
    key = f"{oo.dataset}/{oo.em_array_path}/s0/.zarray"
    head = s3.head_object(Bucket=oo.bucket, Key=key)
    assert head["ContentLength"] == len(oo.objects[key]) and head["ETag"] and head["LastModified"]
    part = s3.get_object(Bucket=oo.bucket, Key=key, Range="bytes=4-13")
    assert part["ContentRange"] == f"bytes 4-13/{len(oo.objects[key])}"
    assert part["Body"].read() == oo.objects[key][4:14]
    prefix = f"{oo.dataset}/{oo.em_array_path}/s0/0/"
    keys, token = [], None
    while True:
        extra: dict[str, str] = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=oo.bucket, Prefix=prefix, MaxKeys=4, **extra)
        keys += [c["Key"] for c in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert keys == sorted(k for k in oo.objects if k.startswith(prefix)) and len(keys) == 9


def test_missing_key_is_nosuchkey_xml(oo: OpenOrganelleReplica) -> None:
    url = key_url(oo, f"{oo.em_array_path}/s9/.zarray")
    answer = raw().get(url, timeout=10)
    assert answer.status_code == 404
    error = ET.fromstring(answer.content)
    assert error.tag == "Error" and error.findtext("Code") == "NoSuchKey"
    assert raw().head(url, timeout=10).status_code == 404


def test_virtual_host_style(oo: OpenOrganelleReplica) -> None:
    answer = raw().get(
        f"{oo.endpoint_url}/{oo.dataset}/{oo.dataset}.zarr/.zgroup",
        headers={"Host": f"{oo.bucket}.s3.amazonaws.com"},
        timeout=10,
    )
    assert answer.status_code == 200 and json.loads(answer.content) == {"zarr_format": 2}


def test_request_log(oo: OpenOrganelleReplica) -> None:
    oo.clear_request_log()
    raw().get(key_url(oo, "thumbnail.jpg"), headers={"Range": "bytes=0-9"}, timeout=10)
    assert oo.request_log == [("GET", f"/{oo.bucket}/{oo.dataset}/thumbnail.jpg", "bytes=0-9")]


# -- tensorstore ----------------------------------------------------------------------------------


def test_tensorstore_reads_an_unaligned_region(variant: OpenOrganelleReplica) -> None:
    kvstore = {
        "driver": "s3",
        "bucket": variant.bucket,
        "path": f"{variant.dataset}/{variant.em_array_path}/s0/",
        "endpoint": variant.endpoint_url,
        "aws_region": "us-east-1",
        "aws_credentials": {"type": "anonymous"},
    }
    assert kvstore == variant.tensorstore_kvstore(f"{variant.em_array_path}/s0/")
    array = ts.open({"driver": "zarr", "kvstore": kvstore}, read=True).result()
    assert array.dtype == ts.int16 and array.shape == (70, 150, 160)
    region = np.s_[5:67, 10:141, 33:159]
    np.testing.assert_array_equal(array[region].read().result(), variant.expected_level(0)[region])
    labels = ts.open(
        {
            "driver": "zarr",
            "kvstore": variant.tensorstore_kvstore(f"{variant.label_array_path}/s0/"),
        },
        read=True,
    ).result()
    np.testing.assert_array_equal(labels.read().result(), variant.expected_labels())


# -- faults ---------------------------------------------------------------------------------------


def test_injected_503_slowdown_then_200(oo: OpenOrganelleReplica, faults: Faults) -> None:
    faults.fail_first = 1
    faults.retry_after_s = 2
    faults.reset_counters()
    url = key_url(oo, f"{oo.em_array_path}/.zattrs")
    first = raw().get(url, timeout=10)
    assert first.status_code == 503 and first.headers["Retry-After"] == "2"
    assert ET.fromstring(first.content).findtext("Code") == "SlowDown"
    second = raw().get(url, timeout=10)
    assert second.status_code == 200 and json.loads(second.content) == oo.zattrs


def test_status_every_counts_requests(oo: OpenOrganelleReplica, faults: Faults) -> None:
    faults.status_every = 2
    faults.reset_counters()
    url = key_url(oo, "thumbnail.jpg")
    codes = [raw().head(url, timeout=10).status_code for _ in range(4)]
    assert codes == [200, 503, 200, 503]


@pytest.mark.parametrize("kind", ["stall", "truncate", "reset"])
def test_broken_bodies(oo: OpenOrganelleReplica, faults: Faults, kind: str) -> None:
    setattr(faults, f"{kind}_every", 1)
    faults.stall_s = 5.0
    url = key_url(oo, f"{oo.em_array_path}/s0/0/0/0")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        raw().get(url, timeout=(5, 0.5))
    faults.clear()
    assert (
        raw().get(url, timeout=10).content
        == oo.objects[f"{oo.dataset}/{oo.em_array_path}/s0/0/0/0"]
    )


def test_latency_keeps_answers_intact(oo: OpenOrganelleReplica, faults: Faults) -> None:
    faults.latency_s = 0.05
    assert raw().get(key_url(oo, "thumbnail.jpg"), timeout=10).status_code == 200


def test_listing_can_omit_names(oo: OpenOrganelleReplica, faults: Faults) -> None:
    faults.omit_from_listing = {"labels", "thumbnail.jpg"}
    fs = s3fs_for(oo)
    top = f"{oo.bucket}/{oo.dataset}"
    assert fs.ls(top) == [f"{top}/{oo.dataset}.zarr"]
    assert f"{top}/{oo.dataset}.zarr/recon-2/labels" not in fs.ls(
        f"{top}/{oo.dataset}.zarr/recon-2"
    )
    assert fs.cat(f"{top}/{oo.dataset}.zarr/recon-2/labels/.zgroup")  # still there to GET


# -- construction -------------------------------------------------------------------------------


def test_root_receives_a_mirror(tmp_path: Path) -> None:
    root = tmp_path
    replica = OpenOrganelleReplica(root, shape=(40, 70, 66), levels=2, dimension_separator=".")
    key = f"{replica.dataset}/{replica.em_array_path}/s0/0.1.1"
    objects = replica.objects  # built on first use; the mirror is written then
    assert (root / replica.bucket / key).read_bytes() == objects[key]
    assert replica.level_shapes == [(40, 70, 66), (20, 35, 33)]
    with pytest.raises(ValueError, match="dimension_separator"):
        OpenOrganelleReplica(dimension_separator="-")
