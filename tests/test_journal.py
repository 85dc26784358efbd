"""The resume journal: a torn last line, a plan that changed, on their own and through the
pipeline (a volume that failed half way is resumed, or started over when the plan changed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import zarr

from emingest.errors import ConversionError
from emingest.journal import TileJournal
from emingest.pipeline import Pipeline, VolumeJob, VolumePaths
from emingest.sources.base import Region, VolumeRef

from .test_pipeline import RecordingSource, em_like, settings_for

PLAN = {"shape": [4, 4, 4], "dtype": "|u1", "tile_bytes": 64}


def test_a_torn_last_line_is_ignored_and_the_lines_before_it_kept(tmp_path: Path) -> None:
    path = tmp_path / ".v.journal"
    journal = TileJournal(path, PLAN)
    journal.start_fresh()
    journal.mark_done(0, (0, 0, 0))
    journal.mark_done(0, (0, 0, 1))
    journal.close()
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"l": 0, "t": [1, 0')  # the kill came mid-write
    again = TileJournal(path, PLAN)
    assert again.load() is True
    assert again.count(0) == 2
    assert again.is_done(0, (0, 0, 1)) and not again.is_done(0, (1, 0, 0))


def test_a_journal_of_another_plan_is_not_resumed(tmp_path: Path) -> None:
    path = tmp_path / ".v.journal"
    journal = TileJournal(path, PLAN)
    journal.start_fresh()
    journal.mark_done(0, (0, 0, 0))
    journal.close()
    assert TileJournal(path, {**PLAN, "tile_bytes": 128}).load() is False
    assert TileJournal(path, PLAN).load() is True


class FailsPastZ(RecordingSource):
    """Fails every region that reaches past ``z``, but only once ``journal`` lists two tiles:
    whatever order the pool runs tasks in, some tiles are on disk when the volume fails."""

    def __init__(self, array: np.ndarray, z: int, journal: Path) -> None:
        super().__init__(array)
        self.z = z
        self.journal = journal

    def read(self, region: Region) -> np.ndarray:
        if region[0].stop > self.z:
            deadline = time.monotonic() + 60
            while _tiles_in(self.journal) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)  # the journal is the other tasks' signal
            raise ConversionError(f"unreadable past z={self.z}")
        return super().read(region)


def _tiles_in(journal: Path) -> int:
    try:
        return max(0, len(journal.read_text(encoding="utf-8").splitlines()) - 1)
    except FileNotFoundError:
        return 0


REF = VolumeRef("recording", "r1", "vol")


def _half_done(tmp_path: Path, a: np.ndarray, tile_bytes: int) -> VolumePaths:
    st = settings_for(tmp_path, workers=2, tile_bytes=tile_bytes)
    paths = VolumePaths.for_ref(tmp_path / "data", REF)
    with Pipeline(st) as pipe:
        [res] = pipe.run([VolumeJob(FailsPastZ(a, 32, paths.journal.path), REF)])
    assert res.status.startswith("error: ")
    done = paths.journal.path.read_text().splitlines()[1:]
    assert done, "no tile was journaled before the failure"
    return paths


def test_a_failed_volume_resumes_past_a_torn_line(tmp_path: Path) -> None:
    a = em_like((64, 64, 96), seed=2)
    paths = _half_done(tmp_path, a, 32 << 10)
    journaled = [json.loads(line) for line in paths.journal.path.read_text().splitlines()[1:]]
    with paths.journal.path.open("a", encoding="utf-8") as fh:
        fh.write('{"l": 0, "t": [9')
    good = RecordingSource(a)
    with Pipeline(settings_for(tmp_path, workers=1, tile_bytes=32 << 10)) as pipe:
        [res] = pipe.run([VolumeJob(good, REF)])
    assert res.status == "complete", res.status
    np.testing.assert_array_equal(zarr.open_group(paths.store.path)["s0"][:], a)
    assert res.record.sha256 is not None
    # the journaled level-0 tiles were not read again for writing (only by the digest)
    fresh = RecordingSource(a)
    with Pipeline(settings_for(tmp_path / "fresh", workers=1, tile_bytes=32 << 10)) as pipe:
        [full] = pipe.run([VolumeJob(fresh, REF)])
    assert full.record.sha256 == res.record.sha256
    assert len(good.regions) < len(fresh.regions)
    assert len(fresh.regions) - len(good.regions) >= sum(1 for j in journaled if j["l"] == 0)


def test_a_changed_plan_starts_the_volume_over(tmp_path: Path) -> None:
    a = em_like((64, 64, 96), seed=3)
    paths = _half_done(tmp_path, a, 32 << 10)
    good = RecordingSource(a)
    # another tile budget: the journal's tiles are not this plan's tiles
    with Pipeline(settings_for(tmp_path, workers=1, tile_bytes=16 << 10)) as pipe:
        [res] = pipe.run([VolumeJob(good, REF)])
    assert res.status == "complete", res.status
    np.testing.assert_array_equal(zarr.open_group(paths.store.path)["s0"][:], a)
    fresh = RecordingSource(a)
    with Pipeline(settings_for(tmp_path / "fresh", workers=1, tile_bytes=16 << 10)) as pipe:
        pipe.run([VolumeJob(fresh, REF)])
    assert len(good.regions) == len(fresh.regions)  # nothing was taken as already written
