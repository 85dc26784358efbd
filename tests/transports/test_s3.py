"""AnonymousS3 against moto's S3 server: unsigned GETs, paged delimiter listings, retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emingest.errors import EntryNotFoundError, SourceError
from emingest.testing.openorganelle import S3Replica
from emingest.transports.retry import RetryPolicy
from emingest.transports.s3 import AnonymousS3, s3_error_code

FAST = RetryPolicy(attempts=3, initial_s=0.01, max_s=0.05)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Replica]:
    with S3Replica() as replica:
        replica.create_bucket("open")
        objects = {f"many/k{i:04d}": b"x" for i in range(1005)}  # > one page (1000 keys)
        objects |= {"ds/a.json": b'{"a": 1}', "ds/sub/b": b"b", "ds/sub2/c": b"c"}
        replica.put_objects("open", objects)
        yield replica


def client(s3: S3Replica, bucket: str = "open") -> AnonymousS3:
    return AnonymousS3(bucket, endpoint_url=s3.endpoint_url, policy=FAST)


def test_get_and_missing_key(s3: S3Replica) -> None:
    c = client(s3)
    assert c.get("ds/a.json") == b'{"a": 1}'
    assert c.get("ds/nothing") is None
    assert c.s3_url("ds/a.json") == "s3://open/ds/a.json"


def test_list_dir_splits_folders_and_objects(s3: S3Replica) -> None:
    folders, names = client(s3).list_dir("ds/")
    assert sorted(folders) == ["sub", "sub2"]
    assert names == ["a.json"]


def test_list_dir_follows_continuation_tokens(s3: S3Replica) -> None:
    _, names = client(s3).list_dir("many/")
    assert len(names) == 1005 and names[-1] == "k1004"


def test_missing_bucket_is_entry_not_found(s3: S3Replica) -> None:
    with pytest.raises(EntryNotFoundError, match="s3://nope/"):
        client(s3, "nope").list_dir("x/")


def test_a_refusal_is_not_retried_and_says_reads_must_be_anonymous(s3: S3Replica) -> None:
    s3.faults.status_code = 403
    s3.faults.fail_first = 1  # only the first request is refused: a retry would succeed
    s3.faults.reset_counters()
    try:
        with pytest.raises(SourceError, match=r"HTTP 403.*must allow anonymous reads"):
            client(s3).get("ds/sub/b")
    finally:
        s3.faults.fail_first = 0
        s3.faults.status_code = 503


def test_503_with_retry_after_is_retried(s3: S3Replica) -> None:
    s3.faults.retry_after_s = 0.01
    s3.faults.status_code = 503
    s3.faults.fail_first = 2
    s3.faults.reset_counters()
    s3.clear_request_log()
    try:
        assert client(s3).get("ds/sub/b") == b"b"
    finally:
        s3.faults.fail_first = 0
    # two 503s, then the answer: the same GET three times
    assert [(m, p) for m, p, _ in s3.request_log] == [("GET", "/open/ds/sub/b")] * 3


def test_error_code_of_an_s3_error_body() -> None:
    assert s3_error_code(b"<Error><Code>SlowDown</Code></Error>") == "SlowDown"
    assert s3_error_code(b"not xml") == ""
