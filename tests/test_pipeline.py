"""End-to-end ingestion of local volumes: output layout, records, resume, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05 import Image

from emingest.config import Settings, load_settings
from emingest.errors import ConversionError
from emingest.omezarr.pyramid import downsample_mean2, downsample_mode
from emingest.pipeline import Pipeline, VolumeJob, VolumePaths
from emingest.records import read_record, resolve_in_root
from emingest.sources import create_source
from emingest.sources.base import Region, Source, VolumeInfo, VolumeReader, VolumeRef


def settings_for(tmp_path: Path, **pipeline: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(tmp_path / "data"), "chunk_shape": [16, 16, 16]},
            "pipeline": {"workers": 2, "tile_bytes": 64 << 10, **pipeline},
            "logging": {"log_dir": str(tmp_path / "logs")},
        },
    )


def em_like(shape: Sequence[int], dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -2000), min(info.max, 250 if info.bits == 8 else 4000)
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def ingest(settings: Settings, paths: Sequence[Path], **kw: Any):
    source = create_source("local", settings)
    jobs = [
        VolumeJob(source, ref, kw.pop("voxel", None))
        for ref in source.discover([str(p) for p in paths])
    ]
    with Pipeline(settings) as pipe:
        return pipe.run(jobs, **kw)


def test_imagej_tiff_becomes_valid_ome_zarr_with_complete_record(tmp_path: Path) -> None:
    a = em_like((37, 70, 90))
    src = tmp_path / "vol.tif"
    tifffile.imwrite(
        src,
        a,
        imagej=True,
        byteorder=">",
        resolution=(50, 50),
        metadata={"spacing": 0.02, "unit": "\\u00B5m", "axes": "ZYX"},
    )
    [res] = ingest(settings_for(tmp_path), [src])
    assert res.status == "complete", res.status
    rec = read_record(res.record_path)
    assert rec.voxel_size_nm == pytest.approx([20.0, 20.0, 20.0])
    assert rec.volume_shape == [37, 70, 90] and rec.dtype == "uint8"
    assert rec.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    assert rec.nbytes == a.nbytes
    assert rec.statistics is not None
    assert rec.statistics.min == a.min() and rec.statistics.max == a.max()
    assert rec.statistics.mean == pytest.approx(float(a.mean()))
    assert rec.statistics.std == pytest.approx(float(a.std()))
    assert sum(rec.statistics.histogram.counts) == a.size
    store = resolve_in_root(rec.local_paths.volume, tmp_path / "data")
    assert store.name == "vol.ome.zarr" and store.parent.parent.name == "local"
    assert rec.file_size_bytes == sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    group = zarr.open_group(store, mode="r")
    Image.from_zarr(group)  # OME-NGFF 0.5 validation
    np.testing.assert_array_equal(group["s0"][:], a)
    # s1 is the 2x mean of s0; s2 of s1... until every axis fits one 16^3 chunk.
    s1 = downsample_mean2(a)
    np.testing.assert_array_equal(group["s1"][:], s1)
    np.testing.assert_array_equal(group["s2"][:], downsample_mean2(s1))
    np.testing.assert_array_equal(group["s3"][:], downsample_mean2(downsample_mean2(s1)))
    shapes = [[37, 70, 90], [19, 35, 45], [10, 18, 23], [5, 9, 12]]
    assert [s.shape for s in rec.scales] == shapes
    assert rec.scales[2].translation_nm == pytest.approx([30.0, 30.0, 30.0])
    assert not VolumePaths.for_ref(tmp_path / "data", _ref_of(res)).journal.exists()


def _ref_of(res: Any) -> VolumeRef:
    return res.ref


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_mrc_and_sixteen_bit_dtypes_are_kept(tmp_path: Path, dtype: str) -> None:
    import mrcfile

    a = em_like((20, 33, 41), dtype)
    src = tmp_path / "v.mrc"
    with mrcfile.new(src) as m:
        m.set_data(a)
        m.voxel_size = (40.0, 30.0, 20.0)  # x y z in Å
    [res] = ingest(settings_for(tmp_path), [src])
    rec = read_record(res.record_path)
    assert rec.status == "complete" and rec.dtype == dtype
    assert rec.voxel_size_nm == pytest.approx([2.0, 3.0, 4.0])
    assert rec.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    np.testing.assert_array_equal(
        zarr.open_group(resolve_in_root(rec.local_paths.volume, tmp_path / "data"))["s0"][:], a
    )


def test_sharded_store_is_valid_and_exact(tmp_path: Path) -> None:
    a = em_like((40, 50, 60))
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, a)
    st = settings_for(tmp_path)
    st.storage.shard_shape = (32, 32, 32)
    [res] = ingest(st, [src], voxel=(5.0, 4.0, 4.0))
    rec = read_record(res.record_path)
    assert rec.status == "complete" and rec.shard_shape == [32, 32, 32]
    assert rec.voxel_size_nm == [5.0, 4.0, 4.0]
    assert rec.voxel_size_origin.startswith("user")
    g = zarr.open_group(resolve_in_root(rec.local_paths.volume, tmp_path / "data"), mode="r")
    Image.from_zarr(g)
    np.testing.assert_array_equal(g["s0"][:], a)


@pytest.mark.parametrize("dims", [(70, 64, 64), (69, 50, 61)])  # odd edges too
def test_levels_from_shards_larger_than_the_budget_equal_whole_downsampling(
    tmp_path: Path, dims: tuple[int, int, int]
) -> None:
    """A shard (32^3 = 32 KiB) footprint below (256 KiB) exceeds tile_bytes (16 KiB): the
    level is built from z-slabs of the level below; every level must equal downsampling the
    whole previous level at once."""
    a = em_like(dims, seed=4)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, a)
    st = settings_for(tmp_path, tile_bytes=16 << 10)
    st.storage.shard_shape = (32, 32, 32)
    [res] = ingest(st, [src], voxel=(5.0, 4.0, 4.0))
    rec = read_record(res.record_path)
    assert rec.status == "complete" and len(rec.scales) >= 3
    g = zarr.open_group(resolve_in_root(rec.local_paths.volume, tmp_path / "data"), mode="r")
    expected = a
    for n in range(len(rec.scales)):
        np.testing.assert_array_equal(g[f"s{n}"][:], expected, err_msg=f"s{n}")
        expected = downsample_mean2(expected)


def test_bad_inputs_fail_alone_with_clear_records(tmp_path: Path) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, em_like((10, 20, 20)))
    truncated = tmp_path / "trunc.tif"
    tifffile.imwrite(truncated, em_like((10, 40, 40)))
    truncated.write_bytes(truncated.read_bytes()[:-5000])
    notimage = tmp_path / "notes.tif"
    notimage.write_text("these are my notes, not an image")
    results = ingest(settings_for(tmp_path), [truncated, good, notimage])
    by_name = {r.ref.name: r for r in results}
    assert by_name["good"].status == "complete"
    for name in ("trunc", "notes"):
        r = by_name[name]
        assert r.status.startswith("error: ")
        assert str(tmp_path / f"{name}.tif") in r.status  # names the file
        assert json.loads(r.record_path.read_text())["status"] == r.status
    assert "truncated" in by_name["trunc"].status


def test_unwritable_data_root_is_an_error_not_a_crash(tmp_path: Path) -> None:
    src = tmp_path / "v.tif"
    tifffile.imwrite(src, em_like((4, 8, 8)), photometric="minisblack")
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    st = settings_for(tmp_path)
    st.storage.data_root = blocker / "data"
    [res] = ingest(st, [src])
    assert res.status.startswith("error: ") and "file-not-folder" in res.status


def test_complete_volume_is_skipped_unless_forced(tmp_path: Path) -> None:
    src = tmp_path / "v.tif"
    tifffile.imwrite(src, em_like((8, 16, 16)))
    st = settings_for(tmp_path)
    [first] = ingest(st, [src])
    s0_chunk = next(
        (resolve_in_root(first.record.local_paths.volume, tmp_path / "data") / "s0").rglob(
            "c/*/*/*"
        )
    )
    mtime = s0_chunk.stat().st_mtime_ns
    [again] = ingest(st, [src])
    assert again.status == "skipped"
    assert s0_chunk.stat().st_mtime_ns == mtime
    [forced] = ingest(st, [src], force=True)
    assert forced.status == "complete"
    assert read_record(forced.record_path).sha256 == first.record.sha256


class RecordingSource(Source, VolumeReader):
    """A source over an in-memory array that records every region it is asked for."""

    name: ClassVar[str] = "recording"

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.regions: list[Region] = []
        self.shape = array.shape
        self.dtype = array.dtype

    def discover(self, spec: Sequence[str], **options: Any) -> list[VolumeRef]:
        return [VolumeRef("recording", "r1", "vol")]

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        return VolumeInfo(
            ref,
            self.array.shape,
            self.array.dtype,
            (8.0, 8.0, 8.0),
            additional_metadata={"kept": {"whole": [1, 2, 3]}},
        )

    def open(self, ref: VolumeRef) -> RecordingSource:
        return self

    def read(self, region: Region) -> np.ndarray:
        self.regions.append(region)
        return self.array[region].copy()

    def close(self) -> None:
        pass


def test_reads_are_bounded_by_the_tile_budget_not_the_volume(tmp_path: Path) -> None:
    a = em_like((64, 96, 160))
    budget = 64 << 10
    src = RecordingSource(a)
    st = settings_for(tmp_path, tile_bytes=budget)
    with Pipeline(st) as pipe:
        [res] = pipe.run([VolumeJob(src, src.discover([])[0])])
    assert res.status == "complete"
    largest = max(int(np.prod([s.stop - s.start for s in r])) for r in src.regions)
    assert largest <= budget < a.nbytes
    rec = read_record(res.record_path)
    assert rec.additional_metadata == {"kept": {"whole": [1, 2, 3]}}
    assert rec.sha256 == hashlib.sha256(a.tobytes()).hexdigest()


class FailingSource(RecordingSource):
    def read(self, region: Region) -> np.ndarray:
        if region[0].stop > 40:
            raise ConversionError(f"corrupt block at z={region[0].stop - 1}")
        return super().read(region)


def test_a_failing_region_marks_the_record_and_other_volumes_finish(tmp_path: Path) -> None:
    a = em_like((64, 32, 32))
    bad, good = FailingSource(a), RecordingSource(a)
    st = settings_for(tmp_path)
    with Pipeline(st) as pipe:
        results = pipe.run(
            [
                VolumeJob(bad, VolumeRef("failing", "f1", "vol")),
                VolumeJob(good, VolumeRef("recording", "r1", "vol")),
            ]
        )
    assert results[0].status.startswith("error: ConversionError: corrupt block at z=")
    assert read_record(results[0].record_path).status == results[0].status
    assert results[1].status == "complete"


def _journal_lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_without_rewriting_finished_tiles(tmp_path: Path) -> None:
    a = em_like((96, 256, 320), seed=3)
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, a)
    env = {
        **os.environ,
        "EMINGEST_PIPELINE__TILE_BYTES": str(256 << 10),
        "EMINGEST_PIPELINE__WORKERS": "1",
        "EMINGEST_STORAGE__CHUNK_SHAPE": "[16,16,16]",
        "EMINGEST_LOGGING__LOG_DIR": str(tmp_path / "logs"),
    }
    cmd = [
        sys.executable,
        "-m",
        "emingest.cli",
        "ingest",
        "local",
        str(src),
        "--data-root",
        str(tmp_path / "data"),
    ]
    source = create_source("local", settings_for(tmp_path))
    [ref] = source.discover([str(src)])
    paths = VolumePaths.for_ref(tmp_path / "data", ref)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _journal_lines(paths.journal.path) < 8 and proc.poll() is None:
        assert time.monotonic() < deadline, "ingest never started writing tiles"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert json.loads(paths.record.path.read_text())["status"] == "saving-data"
    done = _journal_lines(paths.journal.path)
    assert done >= 8
    # The first tile in C order covers z 0:32, y 0:32 and all of x: its chunk files must survive.
    first = sorted((paths.store.path / "s0" / "c" / "0" / "0").iterdir())
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first}
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first}
    assert after == before
    resumed = read_record(paths.record.path)
    fresh_settings = settings_for(tmp_path / "fresh")
    fresh_settings.storage.chunk_shape = (16, 16, 16)
    fresh_settings.pipeline.tile_bytes = 256 << 10
    [fresh] = ingest(fresh_settings, [src])
    assert resumed.status == "complete"
    assert resumed.sha256 == fresh.record.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    assert resumed.statistics == fresh.record.statistics
    np.testing.assert_array_equal(zarr.open_group(paths.store.path)["s0"][:], a)
    np.testing.assert_array_equal(zarr.open_group(paths.store.path)["s1"][:], downsample_mean2(a))


def test_labels_image_attaches_to_its_volume_with_mode_pyramid(tmp_path: Path) -> None:
    image = RecordingSource(em_like((40, 48, 56)))
    mask = (em_like((40, 48, 56), seed=5) > 200).astype(np.uint8) * 255
    labels = RecordingSource(mask)
    image_ref, mask_ref = VolumeRef("recording", "r1", "vol"), VolumeRef("recording", "r1", "gt")
    st = settings_for(tmp_path)
    with Pipeline(st) as pipe:
        [img_res] = pipe.run([VolumeJob(image, image_ref)])
        [lab_res] = pipe.run([VolumeJob(labels, mask_ref, labels_of=image_ref)])
    assert img_res.status == lab_res.status == "complete"
    store = resolve_in_root(img_res.record.local_paths.volume, tmp_path / "data")
    assert (
        resolve_in_root(lab_res.record.local_paths.volume, tmp_path / "data")
        == store / "labels" / "gt"
    )
    assert lab_res.record.additional_metadata["labels_of"] == "r1/vol"
    group = zarr.open_group(store, mode="r")
    Image.from_zarr(group)
    from ome_zarr_models.v05 import ImageLabel, Labels

    Labels.from_zarr(group["labels"])
    label_group = group["labels"]["gt"]
    ImageLabel.from_zarr(label_group)
    np.testing.assert_array_equal(label_group["s0"][:], mask)
    # Mode: every level holds only values that exist in the mask (no mean of 0 and 255).
    np.testing.assert_array_equal(label_group["s1"][:], downsample_mode(mask))
    assert set(np.unique(label_group["s2"][:])) <= {0, 255}
    # Re-ingesting the image with --force keeps its labels.
    with Pipeline(st) as pipe:
        [again] = pipe.run([VolumeJob(image, image_ref)], force=True)
    assert again.status == "complete"
    assert (store / "labels" / "gt" / "s0").exists()
    # The image's size on disk does not count its labels (which exist now, beside it).
    files = [f for f in store.rglob("*") if f.is_file()]
    without_labels = sum(
        f.stat().st_size for f in files if "labels" not in f.relative_to(store).parts
    )
    assert sum(f.stat().st_size for f in files) > without_labels
    assert again.record.file_size_bytes == without_labels
    assert read_record(again.record_path).file_size_bytes == without_labels


class PyramidSource(RecordingSource):
    """A remote-like source with its own pyramid: levels must be copied, not recomputed."""

    digest_from_store = True

    def __init__(self, levels: list[np.ndarray]) -> None:
        super().__init__(levels[0])
        self.level_arrays = levels
        self.level_reads = 0

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        from emingest.omezarr.metadata import Level

        info = super().describe(ref)
        info.levels = [
            Level(
                f"s{k}",
                a.shape,
                (2.96 * 2**k, 4.0 * 2**k, 4.0 * 2**k),
                (1.48 * (2**k - 1), 2.0 * (2**k - 1), 2.0 * (2**k - 1)),
            )
            for k, a in enumerate(self.level_arrays)
        ]
        return info

    def read(self, region: Region) -> np.ndarray:
        raise AssertionError("a pyramid source is read per level")

    def read_level(self, level: int, region: Region) -> np.ndarray:
        self.level_reads += 1
        return self.level_arrays[level][region].copy()


def test_an_archive_pyramid_is_copied_with_its_scales(tmp_path: Path) -> None:
    s0 = em_like((30, 40, 50), "int16")
    s1 = em_like((15, 20, 25), "int16", seed=9)  # deliberately NOT the mean of s0
    src = PyramidSource([s0, s1])
    with Pipeline(settings_for(tmp_path)) as pipe:
        [res] = pipe.run([VolumeJob(src, VolumeRef("remote", "d1", "em"))])
    assert res.status == "complete", res.status
    rec = res.record
    g = zarr.open_group(resolve_in_root(rec.local_paths.volume, tmp_path / "data"), mode="r")
    Image.from_zarr(g)
    np.testing.assert_array_equal(g["s0"][:], s0)
    np.testing.assert_array_equal(g["s1"][:], s1)
    ds = dict(g.attrs)["ome"]["multiscales"][0]["datasets"]
    assert ds[1]["coordinateTransformations"][0]["scale"] == pytest.approx([5.92, 8.0, 8.0])
    assert ds[1]["coordinateTransformations"][1]["translation"] == pytest.approx([1.48, 2, 2])
    assert rec.sha256 == hashlib.sha256(s0.tobytes()).hexdigest()
    assert rec.statistics.min == s0.min()


def test_ordered_digest_reads_bands_in_order_whatever_order_tiles_finish() -> None:
    """The level-0 digest of copies runs while tiles are written: a band is read only once
    all its tiles are done, bands are read in C order, and the result is the whole array's."""
    from emingest.pipeline.digest import OrderedDigest as _OrderedDigest
    from emingest.regions import iter_tiles
    from emingest.statistics import StreamingDigest

    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, size=(40, 24, 20), dtype=np.uint8)
    tile, block = (8, 24, 10), (8, 8, 8)
    written: set[tuple[int, ...]] = set()
    reads: list[int] = []

    def read(band: Region) -> np.ndarray:
        zs = band[0]
        rows = {i for i, *_ in written}
        assert all(z // 8 in rows for z in range(zs.start, zs.stop)), "read before written"
        reads.append(zs.start)
        return array[band]

    # budget 1 KiB: bands of one chunk row (8 planes), i.e. one z-row of tiles each
    ordered = _OrderedDigest(
        StreamingDigest(np.dtype(np.uint8)), array.shape, tile, block, 1024, 1, read
    )
    tiles = [idx for idx, _ in iter_tiles(array.shape, tile)]
    for idx in tiles:
        ordered.expect(idx[0])
    for idx in reversed(tiles):  # the last z-row finishes first
        written.add(idx)
        ordered.tile_done(idx[0])
        assert len(reads) == (len(array) // 8 if idx == tiles[0] else 0)
    assert reads == sorted(reads)
    assert ordered.finish().sha256 == hashlib.sha256(array.tobytes()).hexdigest()


def test_ordered_digest_after_a_resume_reads_everything_at_finish() -> None:
    from emingest.pipeline.digest import OrderedDigest as _OrderedDigest
    from emingest.statistics import StreamingDigest

    array = np.arange(16 * 4 * 4, dtype=np.uint16).reshape(16, 4, 4)
    ordered = _OrderedDigest(
        StreamingDigest(np.dtype(np.uint16)),
        array.shape,
        (8, 4, 4),
        (8, 4, 4),
        1 << 20,
        2,
        lambda band: array[band],
    )
    # every tile was written by an earlier run: nothing expected, all read at finish
    assert ordered.finish().sha256 == hashlib.sha256(array.tobytes()).hexdigest()


def _png(plane: np.ndarray) -> bytes:
    """A grayscale PNG written by hand (zlib + CRC chunks): a writer that is not the reader's."""
    import struct
    import zlib

    depth = plane.dtype.itemsize * 8
    rows = plane.astype(plane.dtype.newbyteorder(">"))  # PNG samples are big-endian
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(plane.shape[0]))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", plane.shape[1], plane.shape[0], depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_a_folder_of_png_slices_is_ingested_exactly(tmp_path: Path, dtype: str) -> None:
    a = em_like((11, 37, 45), dtype, seed=8)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for z in range(a.shape[0]):  # natural order: slice_2 before slice_10
        (folder / f"slice_{z}.png").write_bytes(_png(a[z]))
    [res] = ingest(settings_for(tmp_path), [folder], voxel=(40.0, 5.0, 5.0))
    assert res.status == "complete", res.status
    rec = read_record(res.record_path)
    assert rec.volume_shape == [11, 37, 45] and rec.dtype == dtype
    assert rec.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    store = resolve_in_root(rec.local_paths.volume, tmp_path / "data")
    np.testing.assert_array_equal(zarr.open_group(store)["s0"][:], a)


class ReadIntoSource(RecordingSource):
    """A reader with ``read_into`` (as local files have): the pipeline hands it buffers."""

    def __init__(self, array: np.ndarray) -> None:
        super().__init__(array)
        self.buffers: dict[int, int] = {}  # address -> bytes of the buffer behind each ``out``
        self.into_calls = 0

    def read_into(self, region: Region, out: np.ndarray) -> np.ndarray:
        owner = out
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        self.buffers[owner.__array_interface__["data"][0]] = owner.nbytes
        self.into_calls += 1
        self.regions.append(region)
        out[...] = self.array[region]
        return out


def test_reused_read_buffers_stay_within_the_tile_budget(tmp_path: Path) -> None:
    a = em_like((64, 96, 160), seed=6)
    budget = 64 << 10
    src = ReadIntoSource(a)
    workers = 2
    with Pipeline(settings_for(tmp_path, tile_bytes=budget, workers=workers)) as pipe:
        [res] = pipe.run([VolumeJob(src, src.discover([])[0])])
    assert res.status == "complete", res.status
    assert res.record.sha256 == hashlib.sha256(a.tobytes()).hexdigest()
    assert src.into_calls > 2 * workers  # the buffered path was taken, many times
    largest = max(int(np.prod([s.stop - s.start for s in r])) for r in src.regions)
    assert largest <= budget < a.nbytes
    # one buffer per thread, reused: a few buffers, none larger than the budget
    assert max(src.buffers.values()) <= budget
    assert len(src.buffers) <= workers + 1  # the workers' and the digest's
