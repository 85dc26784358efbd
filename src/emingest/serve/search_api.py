"""Similar patches: ``GET /api/search?like=ID&z=&y=&x=`` and ``POST /api/search`` (a ``.npy``
patch in the body). The index and embeddings are ``emingest.vectors``'s, imported only here
and only when asked: without it both answer 501."""

from __future__ import annotations

import io
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import APIRouter, Query, Request
from starlette.exceptions import HTTPException

from emingest.errors import EmingestError, RequestError

router = APIRouter(tags=["search"])

HIT_THUMBNAIL_PX = 64
"""Side of a hit's thumbnail, in voxels of the hit's level."""


def _vectors() -> Any:
    try:
        import emingest.vectors as vectors
    except ImportError as err:
        raise HTTPException(
            501, f"similarity search needs emingest.vectors, not installed here: {err}"
        ) from err
    return vectors


def hit_links(request: Request, hit: dict[str, Any]) -> dict[str, Any]:
    """A hit's thumbnail (a PNG region around its centre at its level) and page link."""
    rid = str(hit["record_id"])
    center = [round(float(c)) for c in hit["center_zyx"]]
    level = int(hit.get("level") or 0)
    out = {**hit, "page_url": f"/#/volume/{quote(rid)}?z={center[0]}&y={center[1]}&x={center[2]}"}
    try:
        volume = request.app.state.volumes.get(rid)
        l0, ll = volume.level(0).shape, volume.level(level).shape
    except EmingestError:
        out["thumbnail_url"] = None
        return out
    c = [min(max(int(v * n // m), 0), n - 1) for v, n, m in zip(center, ll, l0, strict=True)]
    half = HIT_THUMBNAIL_PX // 2
    y0, x0 = max(0, c[1] - half), max(0, c[2] - half)
    query = urlencode(
        {
            "level": level,
            "z": c[0],
            "y": f"{y0}:{min(ll[1], y0 + HIT_THUMBNAIL_PX)}",
            "x": f"{x0}:{min(ll[2], x0 + HIT_THUMBNAIL_PX)}",
            "format": "png",
        }
    )
    out["thumbnail_url"] = f"/api/records/{quote(rid)}/region?{query}"
    return out


@router.get("/api/search", summary="Patches similar to the one around a point of a volume")
def search_like(
    request: Request,
    like: Annotated[str, Query(max_length=1000, description="record id")],
    z: int,
    y: int,
    x: int,
    k: Annotated[int, Query(ge=1, le=200)] = 12,
    source: Annotated[str | None, Query(max_length=100)] = None,
    where: Annotated[
        str | None, Query(max_length=500, description="as `emingest search --where`")
    ] = None,
) -> dict[str, Any]:
    vectors = _vectors()
    settings = request.app.state.settings
    hits = vectors.search_like(settings, like, (z, y, x), k=k, source=source, where=where)
    return {"query": {"like": like, "zyx": [z, y, x], "k": k}, "hits": _hits(request, hits)}


@router.post("/api/search", summary="Patches similar to an uploaded one (.npy body)")
async def search_array(
    request: Request, k: Annotated[int, Query(ge=1, le=200)] = 12
) -> dict[str, Any]:
    body = await request.body()  # bounded by serve.max_request_bytes
    vectors = _vectors()
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise RequestError(f"the body must be one .npy array (numpy.save): {err}") from err
    if array.ndim not in (2, 3) or array.size == 0:
        raise RequestError(f"the patch must be a 2-D or 3-D array, got shape {array.shape}")
    settings = request.app.state.settings
    hits = vectors.search_array(settings, array, k=k)
    return {"query": {"shape": list(array.shape), "k": k}, "hits": _hits(request, hits)}


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars and arrays (an embedder's distances) become Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _hits(request: Request, hits: Any) -> list[dict[str, Any]]:
    return [hit_links(request, _plain(h.to_dict())) for h in hits]
