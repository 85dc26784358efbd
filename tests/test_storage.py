"""emingest.storage: a folder and an S3 prefix answer the same questions alike."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from emingest.errors import ConfigError, DataRootError
from emingest.storage import DataRoot, LocalRoot, S3Config, S3Root, as_location, parse_s3_url
from emingest.testing.s3_root import S3DataRoot


def _roots(tmp_path: Path, s3_root: S3DataRoot) -> list[DataRoot]:
    return [
        LocalRoot(tmp_path / "root"),
        S3Root(s3_root.url, S3Config(endpoint_url=s3_root.endpoint_url)),
    ]


def test_both_roots_read_write_list_and_delete_alike(tmp_path: Path, s3_root: S3DataRoot) -> None:
    seen = []
    for root in _roots(tmp_path, s3_root):
        assert root.read("a/b.json") is None
        assert not root.exists("a")
        root.write("a/b.json", b"{}")
        root.write("a/.hidden", b"x")
        root.write("a/s.ome.zarr/s0/c/0/0/0", b"12345")
        root.write("a/s.ome.zarr/zarr.json", b"{}")
        assert root.read("a/b.json") == b"{}"
        assert root.exists("a") and root.exists("a/b.json") and root.exists("a/s.ome.zarr")
        assert not root.exists("a/b") and not root.exists("a/s.ome")
        assert root.list_dir("a") == (["s.ome.zarr"], [".hidden", "b.json"])
        assert sorted(root.walk("a/s.ome.zarr")) == [("s0/c/0/0/0", 5), ("zarr.json", 2)]
        root.delete_tree("a/s.ome.zarr")
        assert not root.exists("a/s.ome.zarr") and root.exists("a/b.json")
        root.delete("a/b.json")
        root.delete("a/b.json")  # twice: a missing object is fine
        seen.append(root.list_dir("a"))
    assert seen[0] == seen[1] == ([], [".hidden"])
    # the keys landed below the prefix, nowhere else
    assert s3_root.object_keys() == [f"{s3_root.prefix}/a/.hidden"]


def test_s3_listing_pages_past_a_thousand_keys(s3_root: S3DataRoot) -> None:
    root = S3Root(s3_root.url, S3Config(endpoint_url=s3_root.endpoint_url))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: root.write(f"many/{i:05d}", b"x"), range(1105)))
    assert len(list(root.walk("many"))) == 1105
    assert len(root.list_dir("many")[1]) == 1105
    root.delete_tree("many")
    assert list(root.walk("many")) == []


def test_an_unreachable_bucket_is_one_clear_error(s3_root: S3DataRoot) -> None:
    root = S3Root("s3://no-such-bucket/x", S3Config(endpoint_url=s3_root.endpoint_url))
    with pytest.raises(DataRootError, match="no-such-bucket"):
        root.write("a.json", b"{}")


def test_roots_pickle_without_their_client(s3_root: S3DataRoot) -> None:
    root = S3Root(s3_root.url, S3Config(endpoint_url=s3_root.endpoint_url))
    root.write("p.json", b"1")  # makes the client
    copy = pickle.loads(pickle.dumps(root))
    assert copy == root and copy.read("p.json") == b"1"
    assert copy.kvstore("v.ome.zarr/s0") == {
        "driver": "s3",
        "bucket": s3_root.bucket,
        "path": f"{s3_root.prefix}/v.ome.zarr/s0/",
        "aws_region": "us-east-1",
        "endpoint": s3_root.endpoint_url,
    }


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "s3://b/../x", "http://b/x"])
def test_bad_s3_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_s3_url(url)


def test_keys_never_leave_the_root(tmp_path: Path) -> None:
    root = LocalRoot(tmp_path)
    for key in ("../x", "a/../../x", "a//b"):
        with pytest.raises(ValueError):
            root.location("a") / key
    assert as_location(tmp_path / "a" / "b").parent.parent.path == tmp_path


def test_both_roots_answer_sizes_and_byte_ranges_alike(tmp_path: Path, s3_root: S3DataRoot) -> None:
    for root in _roots(tmp_path, s3_root):
        root.write("s.ome.zarr/c/0", bytes(range(200)))
        assert root.size("s.ome.zarr/c/0") == 200
        assert root.size("s.ome.zarr/c") is None  # a folder is no object
        assert root.size("s.ome.zarr/c/1") is None
        loc = root.location("s.ome.zarr/c/0")
        assert loc.size() == 200
        assert loc.read_range(10, 20) == bytes(range(10, 20))
        assert loc.read_range(190, 200) == bytes(range(190, 200))
        with pytest.raises(FileNotFoundError):
            root.read_range("s.ome.zarr/c/1", 0, 1)
        root.delete_tree("s.ome.zarr")
