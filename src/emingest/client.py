"""The SDK over HTTP: ``emingest.Client("http://host:8000")`` offers what ``emingest.open`` and
``emingest.catalog`` offer locally, through ``emingest serve``'s REST API, so remote code needs
no shared file system.

>>> client = emingest.Client("http://127.0.0.1:8000")                 # doctest: +SKIP
>>> vol = client.open("epfl/ca1-hippocampus/volumedata")
>>> vol.read((10, slice(0, 64), slice(0, 64))).shape
(1, 64, 64)
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote

import numpy as np
import requests

from emingest.catalog import CatalogRow
from emingest.errors import (
    EmingestError,
    EntryNotFoundError,
    MissingExtraError,
    RequestError,
    RequestTooLargeError,
    SourceError,
)
from emingest.records import VolumeRecord
from emingest.volume import LevelInfo, VolumeBase, levels_of

_ERRORS: dict[int, type[EmingestError]] = {
    400: RequestError,
    404: EntryNotFoundError,
    413: RequestTooLargeError,
    422: RequestError,
    501: MissingExtraError,
}


class Client:
    """A connection to an ``emingest serve`` server (``token``: for the job endpoints)."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """One API call; an error answer raises the matching error of emingest's tree."""
        url = f"{self.url}{path}"
        try:
            resp = self.session.request(method, url, timeout=self.timeout_s, **kw)
        except requests.RequestException as err:
            raise SourceError(f"{method} {url}: {err}") from err
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error", resp.text)
            except ValueError:
                message = resp.text
            cls = _ERRORS.get(resp.status_code, SourceError)
            raise cls(f"{method} {url}: {resp.status_code}: {message}")
        return resp

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    # -- catalog --------------------------------------------------------------------------

    def catalog(self, **filters: Any) -> list[CatalogRow]:
        """Records matching the filters of ``emingest.catalog`` (as ``CatalogRow``)."""
        params = {k: v for k, v in filters.items() if v is not None}
        for key in ("min_shape", "max_shape"):
            if key in params:
                params[key] = ",".join(str(int(v)) for v in params[key])
        for old, new in (("voxel_min_nm", "voxel_min"), ("voxel_max_nm", "voxel_max")):
            if old in params:
                params[new] = params.pop(old)
        rows: list[CatalogRow] = []
        offset = 0
        while True:
            page = self.get_json("/api/records", **params, full="true", offset=offset, limit=1000)
            rows += [_row(item) for item in page["items"]]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return rows

    def record(self, record_id: str) -> dict[str, Any]:
        """The record's API answer: summary, levels, labels, links and the full record."""
        return self.get_json(f"/api/records/{quote(record_id)}")

    def open(self, record_id: str) -> RemoteVolume:
        return RemoteVolume(self, self.record(record_id))

    def report(self) -> dict[str, Any]:
        return self.get_json("/api/report")

    # -- search ---------------------------------------------------------------------------

    def search_like(
        self,
        record_id: str,
        zyx: tuple[int, int, int],
        k: int = 12,
        source: str | None = None,
        where: str | None = None,
    ) -> list[dict[str, Any]]:
        z, y, x = (int(v) for v in zyx)
        params = {"like": record_id, "z": z, "y": y, "x": x, "k": k, "source": source}
        if where is not None:
            params["where"] = where
        return self.get_json("/api/search", **params)["hits"]

    def search_array(self, array: np.ndarray, k: int = 12) -> list[dict[str, Any]]:
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        resp = self.request(
            "POST",
            "/api/search",
            params={"k": k},
            data=buf.getvalue(),
            headers={"Content-Type": "application/x-npy"},
        )
        return resp.json()["hits"]

    # -- jobs -----------------------------------------------------------------------------

    def submit_job(
        self, source: str, ids: list[str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Start ``emingest ingest SOURCE IDS...`` on the server; fields as ``POST /api/jobs``."""
        body = {"source": source, "ids": list(ids or []), **fields}
        return self.request("POST", "/api/jobs", json=body).json()

    def jobs(self) -> list[dict[str, Any]]:
        return self.get_json("/api/jobs")["items"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get_json(f"/api/jobs/{quote(job_id)}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/jobs/{quote(job_id)}").json()


def _row(item: dict[str, Any]) -> CatalogRow:
    return CatalogRow(
        id=item["id"],
        source=item["source"],
        source_id=item["source_id"],
        name=item["name"],
        status=item["status"],
        dtype=item["dtype"],
        shape=tuple(item["shape"]) if item["shape"] else None,
        voxel_size_nm=tuple(item["voxel_size_nm"]) if item["voxel_size_nm"] else None,
        nbytes=item["nbytes"],
        file_size_bytes=item["file_size_bytes"],
        sha256=item["sha256"],
        description=item["description"],
        record_path=item["record_path"],
        timestamp=item["timestamp"],
        record=item.get("record") or {},
    )


class RemoteVolume(VolumeBase):
    """A volume read through the REST API (raw region bytes): the same interface as
    :class:`emingest.volume.Volume`."""

    def __init__(self, client: Client, answer: dict[str, Any]) -> None:
        self.client = client
        self.answer = answer
        self.id = answer["id"]
        self.record = VolumeRecord.model_validate(answer["record"])
        self.levels: list[LevelInfo] = levels_of(self.record)
        self.label_ids: list[str] = list(answer.get("labels") or [])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["client"] = (self.client.url, self.client.session.headers.get("Authorization"))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        url, auth = state["client"]
        state["client"] = Client(url, token=auth[7:] if auth else None)
        self.__dict__.update(state)

    def _read_box(self, box: tuple[slice, slice, slice], level: int) -> np.ndarray:
        z, y, x = (f"{s.start}:{s.stop}" for s in box)
        resp = self.client.request(
            "GET",
            f"/api/records/{quote(self.id)}/region",
            params={"level": level, "z": z, "y": y, "x": x, "format": "raw"},
        )
        shape = tuple(int(v) for v in resp.headers["X-Shape"].split(","))
        return np.frombuffer(resp.content, dtype=np.dtype(resp.headers["X-Dtype"])).reshape(shape)

    @property
    def labels(self) -> dict[str, RemoteVolume]:
        out = {}
        for rid in self.label_ids:
            vol = self.client.open(rid)
            out[vol.record.name] = vol
        return out

    def thumbnail(self, size: int = 256) -> np.ndarray:
        """The server's thumbnail (``serve.thumbnail_px``), decoded to uint8; ``size`` resizes."""
        import cv2

        resp = self.client.request("GET", f"/api/records/{quote(self.id)}/thumbnail.png")
        image = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise SourceError(f"{self.id}: the server's thumbnail is not a PNG")
        if max(image.shape) != size:
            from emingest.imaging import fit_size

            h, w = fit_size(image.shape, size)
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return np.asarray(image)


__all__ = ["Client", "RemoteVolume"]
