"""The per-volume record: committed JSON Schema, validation of stub/complete records, atomic IO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from pydantic import ValidationError

from emingest.errors import ConversionError
from emingest.omezarr.metadata import plan_levels
from emingest.records import (
    STATUS_COMPLETE,
    STATUS_SAVING,
    LocalPaths,
    ScaleLevel,
    VolumeRecord,
    error_status,
    read_record,
    record_json_schema,
    record_json_schema_text,
    utc_now,
    write_record,
)
from emingest.statistics import StreamingDigest

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "schemas" / "record.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def stub_record(tmp_path: Path) -> VolumeRecord:
    return VolumeRecord(
        status=STATUS_SAVING,
        source="local",
        source_id="vol-1a2b3c4d",
        name="vol",
        local_paths=LocalPaths(
            volume=str(tmp_path / "vol.ome.zarr"), metadata=str(tmp_path / "vol.json")
        ),
        timestamp=utc_now(),
        voxel_size_nm=[30.0, 4.0, 4.0],
        voxel_size_origin="TIFF header",
        additional_metadata={"header": {"spacing": 0.03, "nested": [1, {"a": None}]}},
        files=[{"name": "vol.tif", "size_bytes": 1234, "sha256": "ab" * 32}],
    )


def complete_record(tmp_path: Path) -> VolumeRecord:
    a = np.random.default_rng(0).integers(0, 255, (20, 30, 40), dtype=np.uint8)
    digest = StreamingDigest(a.dtype)
    digest.update(a)
    levels = plan_levels(a.shape, (8, 8, 8), (30.0, 4.0, 4.0))
    return stub_record(tmp_path).model_copy(
        update={
            "status": STATUS_COMPLETE,
            "timestamp": utc_now(),
            "volume_shape": list(a.shape),
            "dtype": str(a.dtype),
            "chunk_shape": [8, 8, 8],
            "shard_shape": None,
            "scales": [
                ScaleLevel(
                    path=lv.path,
                    shape=list(lv.shape),
                    voxel_size_nm=list(lv.voxel_size_nm),
                    translation_nm=list(lv.translation_nm),
                )
                for lv in levels
            ],
            "sha256": digest.sha256,
            "nbytes": a.nbytes,
            "file_size_bytes": 4567,
            "statistics": digest.result(),
            "ingest_seconds": 0.5,
        }
    )


def as_json(record: VolumeRecord) -> dict[str, Any]:
    return json.loads(record.model_dump_json())


def test_committed_schema_matches_the_model() -> None:
    """Regenerate with ``emingest schema`` when this fails."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == record_json_schema_text()


def test_schema_text_is_the_schema() -> None:
    schema = json.loads(record_json_schema_text())
    assert schema == record_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("make", [stub_record, complete_record])
def test_records_validate_against_the_schema(
    tmp_path: Path, make: Any, validator: jsonschema.protocols.Validator
) -> None:
    instance = as_json(make(tmp_path))
    validator.validate(instance)


def test_error_status_validates(tmp_path: Path, validator: jsonschema.protocols.Validator) -> None:
    status = error_status("download failed:\n  503   Service Unavailable\n")
    assert status == "error: download failed: 503 Service Unavailable"
    record = stub_record(tmp_path).model_copy(update={"status": status})
    validator.validate(as_json(record))
    assert error_status("  \n ") == "error: unknown error"


@pytest.mark.parametrize(
    "status", ["done", "Complete", "complete ", "error:", "error: ", "error:x", "saving", ""]
)
def test_bad_status_rejected(
    tmp_path: Path, status: str, validator: jsonschema.protocols.Validator
) -> None:
    instance = as_json(stub_record(tmp_path))
    instance["status"] = status
    assert not validator.is_valid(instance)
    with pytest.raises(ValidationError):
        VolumeRecord.model_validate(instance)


def test_unknown_field_rejected(tmp_path: Path, validator: jsonschema.protocols.Validator) -> None:
    instance = as_json(stub_record(tmp_path))
    instance["surprise"] = 1
    assert not validator.is_valid(instance)
    with pytest.raises(ValidationError):
        VolumeRecord.model_validate(instance)


def test_missing_required_field_rejected(
    tmp_path: Path, validator: jsonschema.protocols.Validator
) -> None:
    instance = as_json(stub_record(tmp_path))
    del instance["voxel_size_nm"]  # required, although it may be null
    assert not validator.is_valid(instance)
    instance["voxel_size_nm"] = None
    validator.validate(instance)


def test_write_record_is_atomic_and_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "nested"
    path = folder / "vol.json"
    first = stub_record(tmp_path)
    write_record(path, first)
    assert [p.name for p in folder.iterdir()] == ["vol.json"]
    assert json.loads(path.read_text(encoding="utf-8"))["status"] == STATUS_SAVING
    assert read_record(path) == first

    second = complete_record(tmp_path)
    write_record(path, second)  # replaces the stub in place
    assert [p.name for p in folder.iterdir()] == ["vol.json"]
    assert read_record(path) == second
    assert read_record(path).is_complete


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "vol.json"
    target.mkdir()  # a folder where the file should go: the final rename must fail
    (target / "keep").write_text("x", encoding="utf-8")
    with pytest.raises(OSError):
        write_record(target, stub_record(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.json"]
    assert (target / "keep").read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize("text", ["", "{not json", '{"status": "complete"}'])
def test_read_record_rejects_bad_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConversionError, match=r"bad\.json"):
        read_record(path)
    with pytest.raises(ConversionError, match=r"missing\.json"):
        read_record(tmp_path / "missing.json")
