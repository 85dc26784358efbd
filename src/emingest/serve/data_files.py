"""The OME-Zarr stores as static files under ``/data/...`` and the web page under ``/``.

Range requests (suffix ranges too: a sharded Zarr v3 reader fetches the shard index with
``bytes=-N``) are answered by Starlette's ``FileResponse``. Only files inside a ``*.ome.zarr``
store under the data root are served: no ``..``, no hidden parts, no encoded slashes, and the
resolved path (symlinks followed) must still lie under the data root.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

router = APIRouter(tags=["OME-Zarr files"])


def safe_data_path(data_root: Path, rel: str, raw_path: bytes) -> Path:
    """The file ``rel`` names under ``data_root``, or an HTTP 400/404 saying why not."""
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
    root = data_root.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise HTTPException(404, f"/data/{rel}: outside the data root")
    if not target.is_file():
        raise HTTPException(404, f"/data/{rel}: no such file")
    return target


@router.head("/data/{rel:path}", include_in_schema=False)
@router.get(
    "/data/{rel:path}",
    summary="A file of an OME-Zarr store (Range supported; for zarr and neuroglancer)",
)
def data_file(request: Request, rel: str) -> Response:
    settings = request.app.state.settings
    path = safe_data_path(Path(settings.storage.data_root), rel, request.scope.get("raw_path", b""))
    media = "application/json" if path.name.endswith(".json") else "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})


def mount_web(app: FastAPI, web_dir: Path) -> None:
    """The web page: ``/`` is ``index.html``; scripts and styles under ``/web/``."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(web_dir / "index.html", media_type="text/html")

    app.mount("/web", StaticFiles(directory=web_dir), name="web")
