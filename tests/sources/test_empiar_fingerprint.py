"""A changed EMPIAR file (another size in the FTP listing) is ingested again, freshly
downloaded; its unchanged siblings are skipped."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import zarr

from emingest.config import Settings, load_settings
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult
from emingest.records import read_record, resolve_in_root
from emingest.sources.empiar import EmpiarSource
from emingest.testing.empiar import MRC_ENTRY, EmpiarReplica


def run(settings: Settings) -> list[VolumeResult]:
    source = EmpiarSource(settings)
    try:
        refs = source.discover([MRC_ENTRY])
        with Pipeline(settings) as pipe:
            return pipe.run([VolumeJob(source, ref) for ref in refs])
    finally:
        source.close()


def test_a_file_of_another_size_is_ingested_again(tmp_path: Path) -> None:
    with EmpiarReplica(tmp_path / "empiar") as empiar:
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [8, 32, 32]},
                "sources": {
                    "empiar": {
                        "api_url": empiar.api_url,
                        "files_url": empiar.files_ftp_url,  # FTP listings carry sizes
                        "fallback_files_url": empiar.files_http_url,
                        "transport": {"attempts": 2, "backoff_initial_s": 0.01},
                    }
                },
            },
        )
        first = run(settings)
        assert first and all(r.status == "complete" for r in first)
        fp = read_record(first[0].record_path).source_fingerprint
        assert fp and isinstance(fp["files"][0]["size"], int)  # from the FTP listing
        assert all(r.status == "skipped" for r in run(settings))

        name = first[0].ref.name
        (path,) = [p for p in (empiar.tree / MRC_ENTRY / "data").glob("*.mrc") if p.stem == name]
        with mrcfile.open(path) as mrc:
            old = mrc.data.copy()
            voxel = mrc.voxel_size.copy()
        changed = np.concatenate([old, old[:2]])  # two more planes
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(changed)
            mrc.voxel_size = voxel
        again = run(settings)
    assert again[0].status == "complete" and "source changed" in again[0].note
    assert all(r.status == "skipped" for r in again[1:])
    record = read_record(again[0].record_path)
    store = resolve_in_root(record.local_paths.volume, tmp_path / "data")
    np.testing.assert_array_equal(zarr.open_group(store, mode="r")["s0"][:], changed)
