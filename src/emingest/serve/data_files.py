"""The OME-Zarr stores as static files under ``/data/...`` and the web page under ``/``.

Range requests (suffix ranges too: a sharded Zarr v3 reader fetches the shard index with
``bytes=-N``) are answered by Starlette's ``FileResponse`` on a local data root, and by ranged
``GET``s of the object (:meth:`emingest.storage.DataRoot.read_range`) on an ``s3://`` one.
Only files inside a ``*.ome.zarr`` store under the data root are served: no ``..``, no hidden
parts, no encoded slashes, and on a disk the resolved path (symlinks followed) must still lie
under the data root.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from emingest.storage import DataRoot, LocalRoot

router = APIRouter(tags=["OME-Zarr files"])


STREAM_PIECE = 8 << 20
"""Bytes per ranged GET when an object is answered in pieces (a whole shard, say)."""

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def data_key(rel: str, raw_path: bytes) -> str:
    """``rel`` as a key of a file inside a store, or an HTTP 400/404 saying why not."""
    lowered = raw_path.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"%00" in lowered:
        raise HTTPException(
            400, "encoded slashes, backslashes or NUL are not allowed in /data paths"
        )
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        raise HTTPException(404, f"/data/{rel}: not a file of an OME-Zarr store")
    if not any(p.endswith(".ome.zarr") for p in parts[:-1]):
        raise HTTPException(404, f"/data/{rel}: only files inside *.ome.zarr stores are served")
    return rel


def safe_data_path(data_root: Path, rel: str, raw_path: bytes) -> Path:
    """The file ``rel`` names under ``data_root``, or an HTTP 400/404 saying why not."""
    data_key(rel, raw_path)
    root = data_root.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise HTTPException(404, f"/data/{rel}: outside the data root")
    if not target.is_file():
        raise HTTPException(404, f"/data/{rel}: no such file")
    return target


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    # Written here because Starlette parses ranges only inside FileResponse, which needs a
    # file on disk; an object of a bucket has none.
    """``(start, stop)`` of a single ``Range: bytes=...`` header, None for the whole object
    (no header, or several ranges: a 200 is a valid answer to those); HTTP 416 when it
    cannot be satisfied."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # another unit, or malformed: ignored, as RFC 9110 allows
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        stop = min(size, int(last) + 1) if last else size
        if last and int(last) < start:
            return None
    if start >= size or stop <= start:
        raise HTTPException(
            416, f"range {header} outside 0..{size}", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, stop


def object_response(root: DataRoot, key: str, request: Request, media: str) -> Response:
    """One object of a bucket (or any data root) with ``Range`` honoured."""
    size = root.size(key)
    if size is None:
        raise HTTPException(404, f"/data/{key}: no such file")
    headers = {"Cache-Control": "no-cache", "Accept-Ranges": "bytes"}
    span = byte_range(request.headers.get("range"), size)
    status = 200
    start, stop = 0, size
    if span is not None:
        start, stop = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    headers["Content-Length"] = str(stop - start)
    if request.method == "HEAD" or stop == start:
        return Response(status_code=status, media_type=media, headers=headers)

    def pieces() -> Iterator[bytes]:
        for at in range(start, stop, STREAM_PIECE):
            yield root.read_range(key, at, min(stop, at + STREAM_PIECE))

    if stop - start <= STREAM_PIECE:
        try:
            body = root.read_range(key, start, stop)
        except FileNotFoundError as err:  # deleted since its size was asked
            raise HTTPException(404, f"/data/{key}: no such file") from err
        return Response(body, status_code=status, media_type=media, headers=headers)
    return StreamingResponse(pieces(), status_code=status, media_type=media, headers=headers)


def data_root_of(request: Request) -> DataRoot:
    """The served data root, built once per application from its settings."""
    root = getattr(request.app.state, "data_root", None)
    if root is None:
        root = request.app.state.data_root = request.app.state.settings.storage.root()
    return root


@router.head("/data/{rel:path}", include_in_schema=False)
@router.get(
    "/data/{rel:path}",
    summary="A file of an OME-Zarr store (Range supported; for zarr and neuroglancer)",
)
def data_file(request: Request, rel: str) -> Response:
    root = data_root_of(request)
    raw_path = request.scope.get("raw_path", b"")
    media = "application/json" if rel.endswith(".json") else "application/octet-stream"
    if isinstance(root, LocalRoot):
        path = safe_data_path(root.path, rel, raw_path)
        return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})
    return object_response(root, data_key(rel, raw_path), request, media)


def mount_web(app: FastAPI, web_dir: Path) -> None:
    """The web page: ``/`` is ``index.html``; scripts and styles under ``/web/``."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(web_dir / "index.html", media_type="text/html")

    app.mount("/web", StaticFiles(directory=web_dir), name="web")
