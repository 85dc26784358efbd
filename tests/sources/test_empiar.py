"""EmpiarSource end to end against the loopback EMPIAR replica (HTTP autoindex + FTP)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyftpdlib  # noqa: F401  (a broken install fails here, never skips)
import pytest
import rsciio.digitalmicrograph  # noqa: F401  (a broken install fails here, never skips)
import zarr

from emingest.config import Settings, load_settings
from emingest.errors import EntryNotFoundError
from emingest.pipeline import Pipeline, VolumeJob, VolumeResult
from emingest.records import read_record, resolve_in_root
from emingest.sources.empiar import EmpiarSource, parse_accession, series_key
from emingest.testing.empiar import EmpiarReplica

_runs = itertools.count()


@pytest.fixture(scope="module")
def empiar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmpiarReplica]:
    with EmpiarReplica(tmp_path_factory.mktemp("empiar")) as replica:
        yield replica


@pytest.fixture(autouse=True)
def clear_faults(empiar: EmpiarReplica) -> Iterator[None]:
    empiar.faults.clear()
    yield
    empiar.faults.clear()


def settings_for(
    tmp_path: Path,
    empiar: EmpiarReplica,
    *,
    ftp_first: bool = False,
    transport: dict[str, Any] | None = None,
    **src: Any,
):
    http, ftp = empiar.files_http_url, empiar.files_ftp_url
    return load_settings(
        environ={},
        overrides={
            # a fresh data root (and download cache) for every run
            "storage": {
                "data_root": str(tmp_path / f"run{next(_runs)}"),
                "chunk_shape": [8, 64, 64],
            },
            "pipeline": {"workers": 4, "tile_bytes": 96 << 10},
            "sources": {
                "empiar": {
                    "api_url": empiar.api_url,
                    "files_url": ftp if ftp_first else http,
                    "fallback_files_url": http if ftp_first else ftp,
                    **src,
                    "transport": {
                        "connect_timeout_s": 5,
                        "read_timeout_s": 5,
                        "stall_timeout_s": 0.5,
                        "attempts": 10,  # the fault tests break ~half the requests
                        "backoff_initial_s": 0.05,
                        "backoff_max_s": 0.5,
                        **(transport or {}),
                    },
                }
            },
        },
    )


def run(settings: Settings, ids: list[str], **options: Any) -> list[VolumeResult]:
    source = EmpiarSource(settings)
    refs = source.discover(ids, **options)
    with Pipeline(settings) as pipe:
        return pipe.run([VolumeJob(source, ref) for ref in refs])


def stored(result: VolumeResult) -> np.ndarray:
    record = read_record(result.record_path)
    root = result.record_path.parents[2]  # <data_root>/<source>/<source_id>/<name>.json
    return zarr.open_group(resolve_in_root(record.local_paths.volume, root), mode="r")["s0"][:]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- ids ------------------------------------------------------------------------------------


def test_accessions_and_series_keys() -> None:
    assert parse_accession("11759") == parse_accession("EMPIAR-11759") == "11759"
    assert parse_accession("empiar-11759") == "11759"
    with pytest.raises(EntryNotFoundError):
        parse_accession("not-an-id")
    assert series_key("F57-8_test1_3VBSED_slice_0007.dm3") == (
        "F57-8_test1_3VBSED_slice_",
        ".dm3",
        "0007",
    )
    assert series_key("README") is None


@pytest.mark.parametrize("ident", ["99999", "EMPIAR-99999"])
def test_unknown_entry_raises_entry_not_found(
    tmp_path: Path, empiar: EmpiarReplica, ident: str
) -> None:
    source = EmpiarSource(settings_for(tmp_path, empiar))
    with pytest.raises(EntryNotFoundError, match="99999"):
        source.discover([ident])


# -- the DM3 slice series -----------------------------------------------------------------------


def test_dm3_series_becomes_one_z_stack(tmp_path: Path, empiar: EmpiarReplica) -> None:
    (result,) = run(settings_for(tmp_path, empiar), ["EMPIAR-11759"])
    assert result.status == "complete", result.status
    record = read_record(result.record_path)
    height, width = empiar.slice_shape
    assert record.volume_shape == [16, height, width]
    assert record.dtype == "uint8"
    assert record.voxel_size_nm == pytest.approx(empiar.expected_voxel_size_nm())
    assert record.voxel_size_nm == pytest.approx([50.0, 8.0, 8.0], abs=0.01)
    assert "SBFSEM.Record.Slice thickness" in record.voxel_size_origin
    np.testing.assert_array_equal(stored(result), empiar.expected_stack())

    # the member files, in z order, with their digests
    assert [f.name for f in record.files] == [f"data/{n}" for n in empiar.dm3_names]
    for f, name in zip(record.files, empiar.dm3_names, strict=True):
        path = empiar.file_path("11759", name)
        assert f.sha256 == sha256(path) and f.size_bytes == path.stat().st_size
        assert f.url is not None and f.url.endswith(name)

    meta = record.additional_metadata
    entry = empiar.entry_json("11759")["EMPIAR-11759"]
    assert record.description == entry["title"] == meta["title"]
    assert meta["doi"] == "10.6019/EMPIAR-11759"
    assert meta["authors"] == [a["author"]["name"] for a in entry["authors"]]
    assert meta["dates"]["release_date"] == entry["release_date"]
    assert meta["entry"] == entry  # kept whole
    assert meta["imageset_pixel_size_nm"] == [8.0, 8.0]  # 80 Å
    check = meta["calibration_check"]
    assert check["agrees"] is True and check["image_size_agrees"] is True
    assert meta["listing"]["listed"] == meta["listing"]["expected"] == 16
    assert meta["listing"]["missing_count"] == 0


def test_files_pattern_and_max_files(tmp_path: Path, empiar: EmpiarReplica) -> None:
    source = EmpiarSource(settings_for(tmp_path, empiar))
    (four,) = source.discover(["11759"], files="*_000[0-3].dm3")
    assert [Path(m).name for m in four.get("members")] == empiar.dm3_names[:4]
    (three,) = source.discover(["11759"], max_files=3)
    assert len(three.get("members")) == 3 and three.get("kind") == "stack"
    (one,) = source.discover(["11759"], max_files=1)
    assert one.get("kind") == "file"

    results = run(settings_for(tmp_path, empiar), ["11759"], files="data/*_001[0-2].dm3")
    (result,) = results
    assert result.status == "complete"
    np.testing.assert_array_equal(stored(result), empiar.expected_stack()[10:13])


def test_disagreeing_calibration_is_recorded(tmp_path: Path, empiar: EmpiarReplica) -> None:
    imageset = empiar.entries["11759"].record["imagesets"][0]
    saved = dict(imageset)
    imageset["pixel_width"] = imageset["pixel_height"] = 100.0  # 10 nm: not what the files say
    try:
        (result,) = run(settings_for(tmp_path, empiar), ["11759"], max_files=2)
    finally:
        imageset.update(saved)
    record = read_record(result.record_path)
    assert result.status == "complete"
    check = record.additional_metadata["calibration_check"]
    assert check["agrees"] is False and "API" in check["note"]
    assert record.voxel_size_nm == pytest.approx([50.0, 8.0, 8.0], abs=0.01)  # the file wins


# -- the MRC entry --------------------------------------------------------------------------------


def test_mrc_imageset_becomes_one_volume_per_file(tmp_path: Path, empiar: EmpiarReplica) -> None:
    results = run(settings_for(tmp_path, empiar, ftp_first=True), ["10310"])
    expected = empiar.expected_volumes("10310")
    assert [r.ref.name for r in results] == [Path(n).stem for n in expected]
    for result, (name, volume) in zip(results, expected.items(), strict=True):
        assert result.status == "complete", result.status
        np.testing.assert_array_equal(stored(result), volume)
        record = read_record(result.record_path)
        assert record.voxel_size_nm == pytest.approx(empiar.expected_voxel_size_nm("10310"))
        assert record.additional_metadata["listing"]["method"] == "ftp listing"
        (f,) = record.files
        assert f.sha256 == sha256(empiar.file_path("10310", name))


# -- listings that forget files ----------------------------------------------------------------


@pytest.mark.parametrize("ftp_first", [False, True], ids=["autoindex", "ftp"])
def test_file_omitted_from_listing_is_still_fetched(
    tmp_path: Path, empiar: EmpiarReplica, ftp_first: bool
) -> None:
    gone = empiar.dm3_names[7]
    empiar.faults.omit_from_listing = {gone}
    (result,) = run(settings_for(tmp_path, empiar, ftp_first=ftp_first), ["11759"])
    assert result.status == "complete", result.status
    np.testing.assert_array_equal(stored(result), empiar.expected_stack())
    listing = read_record(result.record_path).additional_metadata["listing"]
    assert listing["listed"] == 15 and listing["expected"] == 16
    assert listing["recovered"] == [f"data/{gone}"]
    assert listing["missing_count"] == 0 and listing["gaps"] == []


def test_last_file_omitted_is_found_after_the_series(tmp_path: Path, empiar: EmpiarReplica) -> None:
    gone = empiar.mrc_names[-1]
    empiar.faults.omit_from_listing = {gone}
    results = run(settings_for(tmp_path, empiar), ["10310"])
    assert [r.status for r in results] == ["complete"] * len(empiar.mrc_names)
    listing = read_record(results[0].record_path).additional_metadata["listing"]
    assert listing["recovered"] == [f"data/{gone}"]


def test_what_cannot_be_found_is_recorded(tmp_path: Path, empiar: EmpiarReplica) -> None:
    count = empiar.entries["11759"].record["imagesets"][0]
    count["num_images_or_tilt_series"] = 18  # the API promises two slices that do not exist
    try:
        (result,) = run(settings_for(tmp_path, empiar), ["11759"], max_files=2)
    finally:
        count["num_images_or_tilt_series"] = 16
    listing = read_record(result.record_path).additional_metadata["listing"]
    assert listing["expected"] == 18 and listing["missing_count"] == 2
    assert listing["recovered"] == []


# -- faults ----------------------------------------------------------------------------------------


def test_stalls_and_503s_are_survived(tmp_path: Path, empiar: EmpiarReplica) -> None:
    faults = empiar.faults
    faults.status_every = 3
    faults.retry_after_s = 0.05
    faults.stall_every = 5
    faults.stall_s = 2.0
    faults.truncate_every = 7
    settings = settings_for(tmp_path, empiar, transport={"per_host_connections": 4})
    results = run(settings, ["11759", "10310"])
    assert [r.status for r in results] == ["complete"] * 3
    assert {"503", "stall", "truncate"} <= set(faults.fired)  # each fault really happened
    np.testing.assert_array_equal(stored(results[0]), empiar.expected_stack())
    for result, volume in zip(results[1:], empiar.expected_volumes().values(), strict=True):
        np.testing.assert_array_equal(stored(result), volume)


def test_api_503_then_200(tmp_path: Path, empiar: EmpiarReplica) -> None:
    empiar.faults.fail_first = 2
    empiar.faults.retry_after_s = 0.05
    source = EmpiarSource(settings_for(tmp_path, empiar))
    (ref,) = source.discover(["11759"])
    assert len(ref.get("members")) == 16
    assert empiar.faults.fired[:2] == ["503", "503"]


def test_corrupt_dm3_fails_its_stack_and_the_rest_completes(
    tmp_path: Path, empiar: EmpiarReplica
) -> None:
    bad = empiar.file_path("11759", empiar.dm3_names[5])
    original = bad.read_bytes()
    bad.write_bytes(original[:20] + b"\xff" * 4000 + original[4020:])
    try:
        results = run(settings_for(tmp_path, empiar), ["11759", "10310"])
    finally:
        bad.write_bytes(original)
    stack, *mrcs = results
    assert stack.status.startswith("error: ConversionError")
    assert empiar.dm3_names[5] in stack.status and "corrupt" in stack.status
    assert read_record(stack.record_path).status == stack.status
    assert [r.status for r in mrcs] == ["complete", "complete"]


def test_an_entry_answer_in_the_documented_shape(tmp_path: Path, empiar: EmpiarReplica) -> None:
    """tests/data/api/empiar_11759_entry.json (see the README there): string sizes, Å pixels,
    mixed cross-reference forms; served instead of the replica's own record."""
    fixture = json.loads(
        (
            Path(__file__).resolve().parents[1] / "data" / "api" / "empiar_11759_entry.json"
        ).read_text(encoding="utf-8")
    )
    saved = empiar.entry_json()["EMPIAR-11759"]
    empiar.serve_record(fixture["EMPIAR-11759"])
    try:
        [result] = run(settings_for(tmp_path, empiar), ["11759"])
    finally:
        empiar.serve_record(saved)
    assert result.status == "complete", result.status
    record = read_record(result.record_path)
    assert record.volume_shape == [16, 160, 150]
    assert record.voxel_size_nm == pytest.approx([50.0, 8.0, 8.0], rel=1e-3)  # the files say 7.998
    meta = record.additional_metadata
    assert meta["imageset_pixel_size_nm"] == pytest.approx([8.0, 8.0])  # 80 Å
    assert meta["calibration_check"]["agrees"] is True
    assert meta["entry"] == fixture["EMPIAR-11759"]  # kept whole
    np.testing.assert_array_equal(stored(result), empiar.expected_stack())
