"""A changed EPFL file (same size, newer Last-Modified) is downloaded and ingested again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
import zarr

from emingest.config import Settings
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult
from emingest.records import read_record, resolve_in_root
from emingest.sources.epfl import EpflSource
from emingest.testing.epfl import EPFLReplica

FAST = {"attempts": 2, "backoff_initial_s": 0.01, "backoff_jitter": 0.0, "trust_env": False}


def run(tmp_path: Path, epfl: EPFLReplica) -> VolumeResult:
    settings = Settings.model_validate(
        {
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [16, 32, 32]},
            "sources": {"epfl": {"base_url": epfl.base_url, "transport": FAST}},
        }
    )
    source = EpflSource(settings)
    try:
        with Pipeline(settings) as pipe:
            (result,) = pipe.run([VolumeJob(source, ref) for ref in source.discover(["testing"])])
    finally:
        source.close()
    return result


def test_a_changed_file_is_ingested_again_from_a_fresh_download(tmp_path: Path) -> None:
    with EPFLReplica(tmp_path / "epfl") as epfl:
        first = run(tmp_path, epfl)
        assert first.status == "complete", first.status
        fp = read_record(first.record_path).source_fingerprint
        assert fp and fp["files"][0]["size"] == epfl.file_path("testing").stat().st_size
        assert run(tmp_path, epfl).status == "skipped"

        path = epfl.file_path("testing")
        with tifffile.TiffFile(path) as tif:
            truth = tif.asarray()
            offset = tif.series[0].dataoffset
        assert offset is not None
        changed = truth.copy()
        changed[0] = 255 - changed[0]
        with open(path, "r+b") as fh:  # the first plane, in place: same size
            fh.seek(offset)
            fh.write(changed[0].tobytes())
        later = path.stat().st_mtime + 10
        os.utime(path, (later, later))

        again = run(tmp_path, epfl)
    assert again.status == "complete" and "source changed" in again.note
    record = read_record(again.record_path)
    store = resolve_in_root(record.local_paths.volume, tmp_path / "data")
    np.testing.assert_array_equal(zarr.open_group(store, mode="r")["s0"][:], changed)
