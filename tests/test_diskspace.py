"""A full disk: reported at once as a local storage error (never retried), written into the
volume's record, named by the catalog; after space is freed the same command resumes.

The small disk is a tmpfs mounted by the test (root is needed; skipped where mounting is not
permitted). EFBIG (a file size limit) is tested everywhere, with ``RLIMIT_FSIZE`` in a child.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emingest.catalog import open_catalog
from emingest.config import load_settings
from emingest.diskspace import space_warnings, storage_cause, write_record_in_place
from emingest.errors import CatalogError, LocalStorageError
from emingest.pipeline import Pipeline, VolumeJob
from emingest.records import read_record
from emingest.sources import create_source
from emingest.testing.disk import small_disk
from emingest.testing.http import HTTPReplica
from emingest.transports import Downloader, TransportSettings

MiB = 1 << 20


def resize(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


@pytest.fixture
def files(tmp_path: Path) -> Iterator[HTTPReplica]:
    root = tmp_path / "served"
    root.mkdir()
    (root / "big.bin").write_bytes(np.random.default_rng(0).bytes(3 * MiB))
    replica = HTTPReplica()
    replica.serve_tree("/files", root)
    with replica:
        yield replica


def transport() -> TransportSettings:
    # six attempts with real backoff: a retried full disk would take seconds and show GETs
    return TransportSettings(attempts=6, backoff_initial_s=1.0, parallel_segments=False)


def gets(replica: HTTPReplica) -> list[str]:
    return [p for m, p, _ in replica.request_log if m == "GET"]


def test_download_onto_a_full_disk_fails_at_once_with_the_space_needed(
    tmp_path: Path, files: HTTPReplica
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        with (
            Downloader(transport(), disk / "cache") as down,
            pytest.raises(LocalStorageError) as caught,
        ):
            down.fetch(f"{files.url}/files/big.bin")
        err = caught.value
        assert str(err).startswith("no space left on device: ")
        assert err.path is not None and err.path.endswith("big.bin")
        assert err.needed_bytes is not None and 2 * MiB <= err.needed_bytes <= 3 * MiB
        assert err.errno == errno.ENOSPC
        assert gets(files) == ["/files/big.bin"], "not retried"
        # after space is freed the same call resumes from the partial file and completes
        resize(disk, "8m")
        files.request_log.clear()
        with Downloader(transport(), disk / "cache") as down:
            got = down.fetch(f"{files.url}/files/big.bin")
        assert got.resumed_from > 0
        expected = hashlib.sha256((tmp_path / "served" / "big.bin").read_bytes()).hexdigest()
        assert got.sha256 == expected


_CHILD = """
import resource, sys
from pathlib import Path
from emingest.errors import LocalStorageError
from emingest.transports import Downloader, TransportSettings
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
settings = TransportSettings(attempts=6, backoff_initial_s=1.0, parallel_segments=False)
with Downloader(settings, Path(sys.argv[2])) as down:
    try:
        down.fetch(sys.argv[1])
    except LocalStorageError as err:
        print("LocalStorageError", err.errno, err.needed_bytes)
        sys.exit(0)
print("no error")
"""


def test_a_file_size_limit_is_a_storage_error_too(tmp_path: Path, files: HTTPReplica) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, f"{files.url}/files/big.bin", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    name, code, needed = done.stdout.split()
    assert (name, int(code)) == ("LocalStorageError", errno.EFBIG)
    assert int(needed) >= 2 * MiB
    assert gets(files) == ["/files/big.bin"], "not retried"


def incompressible_tiff(path: Path, shape: tuple[int, int, int]) -> str:
    data = np.random.default_rng(1).integers(0, 255, size=shape, dtype=np.uint8)
    tifffile.imwrite(path, data, photometric="minisblack")
    return hashlib.sha256(data.tobytes()).hexdigest()


def test_full_disk_volume_records_no_space_and_resumes_after_space_is_freed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sha = incompressible_tiff(tmp_path / "vol.tif", (32, 256, 256))  # 2 MiB, no compression gain
    with small_disk(tmp_path / "disk", "1m") as disk:
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(disk / "data"), "chunk_shape": [16, 64, 64]},
                "pipeline": {"workers": 2, "tile_bytes": 256 << 10},
            },
        )

        def run() -> object:
            source = create_source("local", settings)
            (ref,) = source.discover([str(tmp_path / "vol.tif")])
            with Pipeline(settings) as pipe:
                (result,) = pipe.run([VolumeJob(source, ref)])
            return result

        result = run()
        assert "low disk space" in caplog.text  # the volume's own preflight warned first
        assert result.status.startswith("error: no space left on device"), result.status
        assert isinstance(storage_cause(result.error), BaseException)
        record = read_record(result.record_path)
        assert record.status.startswith("error: no space left on device")
        assert "unexpected failure" not in caplog.text
        # the catalog says why it could not index, not "cannot rollback"
        assert "cannot rollback" not in caplog.text

        resize(disk, "16m")
        result = run()
        assert result.status == "complete"
        assert read_record(result.record_path).sha256 == sha


def test_catalog_on_a_full_disk_names_the_cause(tmp_path: Path) -> None:
    sha = incompressible_tiff(tmp_path / "vol.tif", (4, 32, 32))
    settings = load_settings(
        environ={}, overrides={"storage": {"data_root": str(tmp_path / "data")}}
    )
    source = create_source("local", settings)
    (ref,) = source.discover([str(tmp_path / "vol.tif")])
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(source, ref)])
    record = read_record(result.record_path)
    assert record.sha256 == sha
    with small_disk(tmp_path / "disk", "256k") as disk:
        catalog = open_catalog(disk / "catalog.sqlite")
        with catalog:
            filler = disk / "filler"
            with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
                while True:
                    fh.write(b"\0" * 4096)
            with pytest.raises(CatalogError) as caught:
                for i in range(200):  # records big enough to need new pages
                    big = record.model_copy(
                        update={"name": f"v{i}", "description": uuid.uuid4().hex * 200}
                    )
                    catalog.upsert(big, result.record_path)
        message = str(caught.value)
        assert "no space left" in message
        assert "cannot rollback" not in message
        # `catalog list` on the full disk lists, or names the cause
        try:
            with open_catalog(disk / "catalog.sqlite") as again:
                assert all(row.source == "local" for row in again.query())
        except CatalogError as err:
            assert "no space left on the disk holding the catalog" in str(err)


def test_error_record_is_written_in_place_when_a_new_file_cannot_be(tmp_path: Path) -> None:
    sha = incompressible_tiff(tmp_path / "vol.tif", (4, 32, 32))
    settings = load_settings(
        environ={}, overrides={"storage": {"data_root": str(tmp_path / "data")}}
    )
    source = create_source("local", settings)
    (ref,) = source.discover([str(tmp_path / "vol.tif")])
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(source, ref)])
    record = read_record(result.record_path)
    assert record.sha256 == sha
    size = result.record_path.stat().st_size
    failed = record.model_copy(update={"status": "error: no space left on device: " + "x" * size})
    assert write_record_in_place(result.record_path, failed)
    assert result.record_path.stat().st_size == size  # nothing allocated
    again = read_record(result.record_path)
    assert again.status.startswith("error: no space left on device: xxx")
    assert again.sha256 == sha


def test_space_warnings_add_up_what_one_file_system_must_hold(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    assert space_warnings([(tmp_path / "a", 1), (tmp_path / "b", 1)]) == []
    lines = space_warnings([(tmp_path / "a", free), (tmp_path / "b", free)])
    assert len(lines) == 1 and "low disk space" in lines[0] and str(tmp_path / "b") in lines[0]
    assert "min_free_bytes" in space_warnings([(tmp_path, 0)], floor_bytes=free * 4)[0]


def test_run_preflight_warns_when_free_space_is_below_the_floor(tmp_path: Path) -> None:
    from emingest.config import DatasetSettings
    from emingest.run import run_datasets

    incompressible_tiff(tmp_path / "vol.tif", (4, 32, 32))
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    lines: list[str] = []
    for floor, expect in ((free * 4, True), (0, False)):
        lines.clear()
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(tmp_path / f"data{floor}")},
                "limits": {"min_free_bytes": floor},
            },
        )
        dataset = DatasetSettings(name="v", source="local", ids=[str(tmp_path / "vol.tif")])
        (outcome,) = run_datasets(settings, [dataset], report_line=lines.append)
        assert outcome.results[0].status == "complete"  # a warning, never a failure
        assert any("low disk space" in line for line in lines) is expect, lines


def test_catalog_list_on_a_full_disk_names_the_cause(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "256k") as disk:
        open_catalog(disk / "catalog.sqlite").close()
        with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as fh:
            while True:
                fh.write(b"\0" * 4096)
        try:
            with open_catalog(disk / "catalog.sqlite") as catalog:
                assert catalog.query() == []
        except CatalogError as err:  # sqlite says "disk I/O error" when it cannot map its -shm
            assert "no space left on the disk holding the catalog" in str(err)


def test_only_our_own_disk_counts_as_full() -> None:
    from emingest.errors import ConversionError, SourceError

    ours = ConversionError("writing s0 failed: RESOURCE_EXHAUSTED: No space left on device")
    theirs = SourceError("https://archive.example/x: HTTP 507 (no space left on device)")
    assert storage_cause(ours) is ours
    assert storage_cause(theirs) is None
    assert storage_cause(OSError(errno.EROFS, "Read-only file system")) is not None
    assert storage_cause(OSError(errno.ENOENT, "No such file")) is None
