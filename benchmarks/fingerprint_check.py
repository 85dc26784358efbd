"""Benchmark: what checking a complete volume's source for changes costs on a re-run.

    .venv/bin/python benchmarks/fingerprint_check.py --slices 5000 --runs 3

A folder of N small TIFF slices is ingested once; then, medians of the runs of:
  (a) the local source's describe (what a re-run does before skipping), fingerprint included
  (b) the fingerprint alone (one stat per slice)
  (c) a whole re-run of `Pipeline.run` that finds the volume unchanged and skips it
and the size of the record's fingerprint.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from emingest.config import load_settings
from emingest.fingerprints import local_files_fingerprint
from emingest.formats.stack import stack_members
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources import create_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "slices"
        folder.mkdir()
        plane = np.zeros((32, 32), np.uint8)
        for i in range(args.slices):
            tifffile.imwrite(folder / f"s{i:06d}.tif", plane)
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(root / "data")},
                "logging": {"log_dir": str(root / "logs")},
            },
        )
        local = create_source("local", settings)
        (ref,) = local.discover([str(folder)])
        with Pipeline(settings) as pipe:
            (first,) = pipe.run([VolumeJob(local, ref)])
        assert first.status == "complete", first.status
        members = stack_members(folder)
        describe, alone, rerun = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            local.describe(ref)
            describe.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fp = local_files_fingerprint(members)
            alone.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with Pipeline(settings) as pipe:
                (again,) = pipe.run([VolumeJob(local, ref)])
            rerun.append(time.perf_counter() - t0)
            assert again.status == "skipped", again.status
        print(f"slices: {args.slices}, runs: {args.runs} (medians)")
        print(f"(a) describe with fingerprint: {statistics.median(describe) * 1e3:.0f} ms")
        print(f"(b) fingerprint alone:         {statistics.median(alone) * 1e3:.0f} ms")
        print(f"(c) re-run, unchanged, skipped: {statistics.median(rerun) * 1e3:.0f} ms")
        print(f"fingerprint in the record:     {len(json.dumps(fp))} bytes")


if __name__ == "__main__":
    main()
