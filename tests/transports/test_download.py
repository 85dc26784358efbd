"""PrefixHasher: the sha256 of a file whose segments finish out of order."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from emingest.errors import IntegrityError
from emingest.transports.digest import PrefixHasher

SEG = 1000


@pytest.fixture
def blob() -> bytes:
    return os.urandom(5 * SEG + 123)  # six segments, the last one short


def test_segments_out_of_order_hash_the_whole_file(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(b"\0" * len(blob))
    hasher = PrefixHasher(path, len(blob), SEG, done=set())
    with open(path, "r+b") as fh:
        for i in (3, 5, 1, 0, 4, 2):  # the prefix only grows when 0, then 1, 2 ... are there
            fh.seek(i * SEG)
            fh.write(blob[i * SEG : (i + 1) * SEG])
            fh.flush()
            hasher.segment_done(i)
    assert hasher.hexdigest() == hashlib.sha256(blob).hexdigest()


def test_resumed_segments_count_from_the_start(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(blob)
    hasher = PrefixHasher(path, len(blob), SEG, done={0, 1, 2})  # done by an earlier run
    for i in (5, 3, 4):
        hasher.segment_done(i)
    assert hasher.hexdigest() == hashlib.sha256(blob).hexdigest()


def test_a_missing_segment_is_an_error_not_a_wrong_hash(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(blob)
    hasher = PrefixHasher(path, len(blob), SEG, done=set())
    for i in (0, 1, 3, 4, 5):
        hasher.segment_done(i)
    with pytest.raises(IntegrityError, match="hashed 2000 of 5123"):
        hasher.hexdigest()


def test_a_file_shorter_than_its_segments_is_an_error(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(blob[: 2 * SEG])
    hasher = PrefixHasher(path, len(blob), SEG, done=set(range(6)))
    with pytest.raises(IntegrityError, match="ends at byte 2000"):
        hasher.hexdigest()
