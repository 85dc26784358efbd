"""``/api/search``: the shape of its answers (search by a volume's patch and by an uploaded
image) and the validation of its query."""

from __future__ import annotations

import io

import cv2
import numpy as np
import requests

from emingest.config import Settings
from emingest.serve.loopback import ApiServer

VOLUME = "epfl/ca1-hippocampus/volumedata"


def test_search_validates_its_query(api: ApiServer) -> None:
    resp = requests.get(f"{api.url}/api/search", params={"like": VOLUME, "z": 1}, timeout=10)
    assert resp.status_code == 422 and "y" in resp.json()["error"]
    resp = requests.get(
        f"{api.url}/api/search",
        params={"like": VOLUME, "z": 1, "y": 1, "x": 1, "k": 5000},
        timeout=10,
    )
    assert resp.status_code == 422


def _check_hits(api: ApiServer, hits: list[dict[str, object]], k: int) -> None:
    assert 0 < len(hits) <= k
    for hit in hits:
        for key in (
            "record_id",
            "center_zyx",
            "center_nm",
            "level",
            "distance",
            "thumbnail_url",
            "page_url",
        ):
            assert key in hit, key
        png = requests.get(f"{api.url}{hit['thumbnail_url']}", timeout=10)
        assert png.headers["content-type"] == "image/png"
        image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 2 and min(image.shape) > 0
    distances = [float(h["distance"]) for h in hits]  # type: ignore[arg-type]
    assert distances == sorted(distances)


def test_search_like_a_point_returns_hits_with_thumbnails(
    embedded: Settings, api: ApiServer
) -> None:
    params = {"like": VOLUME, "z": 12, "y": 80, "x": 90, "k": 5}
    resp = requests.get(f"{api.url}/api/search", params=params, timeout=60)
    assert resp.status_code == 200, resp.text
    _check_hits(api, resp.json()["hits"], 5)


def test_search_by_uploaded_patch(embedded: Settings, api: ApiServer) -> None:
    patch = requests.get(
        f"{api.url}/api/records/{VOLUME}/region",
        params={"z": 12, "y": "40:104", "x": "40:104"},
        timeout=10,
    )
    array = np.load(io.BytesIO(patch.content))[0]
    buf = io.BytesIO()
    np.save(buf, array)
    resp = requests.post(f"{api.url}/api/search", params={"k": 4}, data=buf.getvalue(), timeout=60)
    assert resp.status_code == 200, resp.text
    _check_hits(api, resp.json()["hits"], 4)
    bad = requests.post(f"{api.url}/api/search", data=b"not an array", timeout=10)
    assert bad.status_code == 400 and ".npy" in bad.json()["error"]
