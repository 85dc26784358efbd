"""IdrSource.describe on answers shaped like the real IDR's (tests/data/api, see its README),
served over loopback HTTP: the replica we wrote is not the only JSON our parsing has met."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emingest.config import Settings
from emingest.sources.base import VolumeRef
from emingest.sources.idr import IdrSource
from emingest.testing.http import HTTPReplica, RequestContext

API = Path(__file__).resolve().parents[1] / "data" / "api"
IMAGE_ID = 9846137
REL = (
    "idr0086-miron-micrographs/20200610-ftp/experimentD/Miron_FIB-SEM/Miron_FIB-SEM_processed/"
    "Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif"
)


def fixture(name: str) -> Any:
    return json.loads((API / name).read_text(encoding="utf-8"))


class RecordedAnswers(HTTPReplica):
    """Serves the three documents ``describe`` asks for; tests may swap them."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = {
            f"/api/v0/m/images/{IMAGE_ID}/": fixture("idr_image_9846137.json"),
            f"/webgateway/imgData/{IMAGE_ID}/": fixture("idr_imgdata_9846137.json"),
            f"/webgateway/original_file_paths/{IMAGE_ID}/": fixture(
                "idr_original_file_paths_9846137.json"
            ),
        }
        self.route("GET", r"/.*", self._answer)

    def _answer(self, ctx: RequestContext) -> None:
        if ctx.path.startswith("/files/"):  # describe HEADs the file for its fingerprint
            ctx.send_bytes(b"\0" * 16, ranged=True)
        elif ctx.path in self.answers:
            ctx.send_json(self.answers[ctx.path])
        else:
            ctx.send_json({"message": f"{ctx.path} not found"}, status=404)


@pytest.fixture(scope="module")
def api() -> Iterator[RecordedAnswers]:
    with RecordedAnswers() as server:
        yield server  # type: ignore[misc]


def describe(api: RecordedAnswers, tmp_path: Path) -> Any:
    settings = Settings.model_validate(
        {
            "storage": {"data_root": str(tmp_path)},
            "sources": {
                "idr": {
                    "api_url": api.url,
                    "files_url": f"{api.url}/files/pub/databases/IDR",
                    "transport": {"trust_env": False, "attempts": 1},
                }
            },
        }
    )
    source = IdrSource(settings)
    try:
        return source.describe(VolumeRef("idr", str(IMAGE_ID), "x", locator=str(IMAGE_ID)))
    finally:
        source.close()


def test_the_documented_image_answer(api: RecordedAnswers, tmp_path: Path) -> None:
    info = describe(api, tmp_path)
    assert info.shape == (184, 775, 1121)  # XYZCT sizes -> z, y, x
    assert info.dtype == np.uint8
    assert info.voxel_size_nm == pytest.approx((20.0, 20.0, 20.0))  # LengthI in µm -> nm
    assert info.download_url == f"{api.url}/files/pub/databases/IDR/" + REL
    # the archive's documents are kept whole
    assert info.additional_metadata["image"] == fixture("idr_image_9846137.json")
    assert info.additional_metadata["imgData"] == fixture("idr_imgdata_9846137.json")


def test_absent_physical_sizes_fall_back_to_imgdata_micrometres(
    api: RecordedAnswers, tmp_path: Path
) -> None:
    """omero-marshal omits unset members: no PhysicalSize* at all, imgData says 0.02 µm."""
    saved = copy.deepcopy(api.answers)
    try:
        pixels = api.answers[f"/api/v0/m/images/{IMAGE_ID}/"]["data"]["Pixels"]
        for axis in "XYZ":
            del pixels[f"PhysicalSize{axis}"]
        info = describe(api, tmp_path)
        assert info.voxel_size_nm == pytest.approx((20.0, 20.0, 20.0))
    finally:
        api.answers = saved


def test_client_path_without_leading_slash_when_repo_is_empty(
    api: RecordedAnswers, tmp_path: Path
) -> None:
    saved = copy.deepcopy(api.answers)
    try:
        api.answers[f"/webgateway/original_file_paths/{IMAGE_ID}/"]["repo"] = []
        info = describe(api, tmp_path)
        assert info.download_url == f"{api.url}/files/pub/databases/IDR/" + REL
    finally:
        api.answers = saved
