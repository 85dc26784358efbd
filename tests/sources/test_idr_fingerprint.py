"""A changed IDR original is ingested again, from a fresh download, not from the stale cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from emingest.config import Settings
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult
from emingest.records import read_record, resolve_in_root
from emingest.sources.idr import IdrSource
from emingest.testing.idr import IDRReplica

IMAGE = 9846137
FAST = {"attempts": 2, "backoff_initial_s": 0.01, "backoff_jitter": 0.0, "trust_env": False}


def run(tmp_path: Path, idr: IDRReplica, protocol: str) -> VolumeResult:
    files = idr.files_http_url if protocol == "http" else idr.files_ftp_url
    settings = Settings.model_validate(
        {
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [8, 16, 16]},
            "sources": {"idr": {"api_url": idr.api_url, "files_url": files, "transport": FAST}},
        }
    )
    source = IdrSource(settings)
    try:
        with Pipeline(settings) as pipe:
            (result,) = pipe.run([VolumeJob(source, ref) for ref in source.discover([str(IMAGE)])])
    finally:
        source.close()
    return result


@pytest.mark.parametrize("protocol", ["http", "ftp"])
def test_a_changed_original_is_downloaded_and_ingested_again(tmp_path: Path, protocol: str) -> None:
    with IDRReplica(tmp_path / "idr", image_shape=(6, 30, 40), bulk_images=0) as idr:
        first = run(tmp_path, idr, protocol)
        assert first.status == "complete", first.status
        fp = read_record(first.record_path).source_fingerprint
        assert fp and fp["files"][0]["size"] > 0
        if protocol == "http":
            assert fp["files"][0]["last_modified"]
        assert run(tmp_path, idr, protocol).status == "skipped"

        original = idr.tree / idr.file_path(IMAGE)
        truth = tifffile.imread(original)
        changed = truth.copy()
        changed[-1] = 255 - changed[-1]  # the last plane, in place: same size
        if protocol == "http":  # same size, new bytes: Last-Modified tells
            with tifffile.TiffFile(original) as tif:
                offset = tif.series[0].dataoffset
            assert offset is not None
            with open(original, "r+b") as fh:
                fh.seek(offset + truth[:-1].nbytes)
                fh.write(changed[-1].tobytes())
            later = original.stat().st_mtime + 10
            os.utime(original, (later, later))
        else:  # FTP knows only sizes: a revised file, one more note in its description
            tifffile.imwrite(
                original,
                changed,
                byteorder=">",
                imagej=True,
                metadata={"axes": "ZYX", "Info": "revised"},
            )
        assert (tifffile.imread(original) == changed).all()

        again = run(tmp_path, idr, protocol)
    assert again.status == "complete" and "source changed" in again.note
    record = read_record(again.record_path)
    store = resolve_in_root(record.local_paths.volume, tmp_path / "data")
    np.testing.assert_array_equal(zarr.open_group(store, mode="r")["s0"][:], changed)
