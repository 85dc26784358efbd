"""Downloads onto a full disk, every way bytes land: one HTTP stream, parallel Range segments,
FTP. Each fails at once with a LocalStorageError, never retried (tmpfs mounted by the test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emingest.errors import LocalStorageError
from emingest.testing.disk import small_disk
from emingest.testing.ftp import FTPReplica
from emingest.transports import Downloader, TransportSettings


@pytest.mark.parametrize("how", ["stream", "segments", "ftp"])
def test_full_disk_is_never_retried(
    tmp_path: Path,
    fast: TransportSettings,
    http_server,  # type: ignore[no-untyped-def]
    ftp_server: FTPReplica,
    blob: bytes,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    settings = fast.model_copy(
        update={
            "parallel_segments": how == "segments",
            "parallel_min_bytes": 1,
            "segment_bytes": max(1, len(blob) // 4),
        }
    )
    base = ftp_server.url if how == "ftp" else http_server.url
    with small_disk(tmp_path / "disk", "64k") as disk:
        with Downloader(settings, disk) as down, pytest.raises(LocalStorageError) as caught:
            down.fetch(f"{base}/pub/files/blob.bin")
        assert str(caught.value).startswith("no space left on device: ")
        assert caught.value.path is not None and caught.value.path.endswith("blob.bin")
    assert "retry" not in caplog.text
    if how != "ftp":  # each byte range asked for once at most: no GET was retried
        ranges = [r for m, _, r in http_server.request_log if m == "GET"]
        assert ranges and len(ranges) == len(set(ranges))
        assert len(ranges) <= (5 if how == "segments" else 1)  # 1 MiB + 12345 B in quarters
