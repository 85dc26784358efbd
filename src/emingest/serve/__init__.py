"""``emingest serve``: the catalog, voxels, OME-Zarr stores, search and ingest jobs over HTTP,
plus a web page, in one FastAPI application (OpenAPI at ``/docs``).

>>> from emingest.serve import create_app
>>> app = create_app(settings)         # doctest: +SKIP   any ASGI server runs it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from emingest.config import Settings


def create_app(settings: Settings, *, start_jobs: bool = True) -> FastAPI:
    from emingest.serve.app import create_app as _create

    return _create(settings, start_jobs=start_jobs)


def make_server(settings: Settings, **uvicorn_options: Any) -> Any:
    """A ``uvicorn.Server`` for the app on ``serve.host``/``serve.port`` (call ``.run()``)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(settings),
        host=settings.serve.host,
        port=settings.serve.port,
        log_level="info",
        access_log=settings.serve.access_log,
        **uvicorn_options,
    )
    return uvicorn.Server(config)


__all__ = ["create_app", "make_server"]
