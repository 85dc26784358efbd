"""`emingest catalog sync --from s3://bucket/prefix`: records read from moto's S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emingest.catalog import open_catalog, read_sidecars
from emingest.catalog.s3_records import S3Records, parse_s3_url
from emingest.cli import app
from emingest.errors import ConfigError, EntryNotFoundError, TransientSourceError
from emingest.testing.catalog import SAMPLE_IDS, write_sample_tree
from emingest.testing.openorganelle import S3Replica
from emingest.transports.retry import RetryPolicy

BUCKET = "em-data"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Replica]:
    with S3Replica() as replica:
        replica.create_bucket(BUCKET)
        yield replica


@pytest.fixture
def uploaded(s3: S3Replica, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Path]:
    """The sample data root, every file of it uploaded under a prefix of its own."""
    root = write_sample_tree(tmp_path / "data")
    prefix = f"runs/{request.node.name}"
    s3.put_objects(
        BUCKET,
        {
            f"{prefix}/{p.relative_to(root).as_posix()}": p.read_bytes()
            for p in root.rglob("*")
            if p.is_file()
        },
    )
    return f"s3://{BUCKET}/{prefix}", root


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://b/some/prefix/") == ("b", "some/prefix/")
    assert parse_s3_url("s3://b") == ("b", "")
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        parse_s3_url("/data")
    with pytest.raises(ConfigError, match="no bucket"):
        parse_s3_url("s3:///x")


def test_rows_from_s3_equal_the_local_ones_but_for_where(
    s3: S3Replica, uploaded: tuple[str, Path]
) -> None:
    url, root = uploaded
    records = S3Records(url, endpoint_url=s3.endpoint_url)
    rows, result = records.read_rows()
    local, local_result = read_sidecars(root)
    assert [r.id for r in rows] == SAMPLE_IDS
    for remote, here in zip(rows, local, strict=True):
        assert remote.record == here.record and remote.summary().keys() == here.summary().keys()
        rel = Path(here.record_path).relative_to(root.resolve()).as_posix()
        assert remote.record_path == f"{url}/{rel}"
    # the broken record is skipped, zarr metadata and hidden files are never read as records
    [(where, reason)] = result.skipped
    assert where == f"{url}/idr/9846137/broken.json" and "unreadable" in reason
    assert len(local_result.skipped) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_catalog_sync_from_s3(
    backend: str,
    s3: S3Replica,
    uploaded: tuple[str, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    url, _ = uploaded
    db = str(tmp_path / "c.sqlite")
    env = {}
    if backend == "postgres":
        env["EMINGEST_CATALOG__URL"] = request.getfixturevalue("postgres_url")
    empty_root = tmp_path / "empty"
    args = ["catalog", "sync", "--data-root", str(empty_root), "--from", url]
    args += ["--endpoint-url", s3.endpoint_url]
    if backend == "sqlite":
        args += ["--db", db]
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    assert f"indexed 6 records from {url}" in done.output
    location = env.get("EMINGEST_CATALOG__URL", db)
    with open_catalog(location) as cat:
        rows = cat.query()
    assert [r.id for r in rows] == SAMPLE_IDS
    assert rows[0].record_path == f"{url}/empiar/11759/other.json"


def test_missing_bucket_is_an_error(s3: S3Replica, tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError, match="does not exist"):
        S3Records("s3://no-such-bucket/x", endpoint_url=s3.endpoint_url).read_rows()
    args = ["catalog", "sync", "--db", str(tmp_path / "c.sqlite"), "--data-root", str(tmp_path)]
    args += ["--from", "s3://no-such-bucket/x", "--endpoint-url", s3.endpoint_url]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 1
    assert "no-such-bucket" in done.output


def test_fetch_failures_abort_the_sync_and_keep_the_index(
    s3: S3Replica, uploaded: tuple[str, Path], tmp_path: Path
) -> None:
    """A record that could not be fetched is not a record that is gone: nothing is replaced."""
    url, root = uploaded
    quick = RetryPolicy(attempts=2, initial_s=0.01, max_s=0.01, max_retry_after_s=0.01)
    with open_catalog(tmp_path / "c.sqlite", data_root=root) as cat:
        before = cat.query()
        s3.faults.retry_after_s = 0.01
        s3.faults.fail_first = 1  # one 503, then the retry succeeds
        s3.faults.reset_counters()
        s3.clear_request_log()
        try:
            assert cat.sync(S3Records(url, endpoint_url=s3.endpoint_url, policy=quick)).indexed == 6
            first, second = s3.request_log[:2]
            assert first == second  # the 503 was retried
            s3.faults.status_every = 1  # every GET answers 503, retries too
            with pytest.raises(TransientSourceError, match="503"):
                cat.sync(S3Records(url, endpoint_url=s3.endpoint_url, policy=quick))
        finally:
            s3.faults.clear()
        assert [r.id for r in cat.query()] == [r.id for r in before]
        assert cat.query()[0].record_path.startswith(url)  # the first, successful sync's rows
