"""The FastAPI application factory: routers, CORS, request-size limit, errors as JSON.

Every error answer is ``{"error": "<what went wrong and what to do>", "status": <code>}``, with
CORS headers (neuroglancer reads 404s of absent chunks cross-origin).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emingest._version import __version__
from emingest.config import Settings
from emingest.errors import (
    CatalogError,
    ConfigError,
    EmingestError,
    EntryNotFoundError,
    MissingExtraError,
    RequestError,
    RequestTooLargeError,
)

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def status_for(err: EmingestError) -> int:
    """The HTTP status of an error of the tree."""
    if isinstance(err, RequestTooLargeError):
        return 413
    if isinstance(err, RequestError | ConfigError):
        return 400
    if isinstance(err, EntryNotFoundError):
        return 404
    if isinstance(err, MissingExtraError):
        return 501
    if isinstance(err, CatalogError):
        return 503
    return 500


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether they announce a length or
    stream chunked, before the application reads them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = error_response(
            413, f"request body over {self.limit} bytes (serve.max_request_bytes)"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    announced = 0
                if announced > self.limit:
                    await too_big(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestTooLargeError(
                        f"request body over {self.limit} bytes (serve.max_request_bytes)"
                    )
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLargeError as err:
            if not started:
                await error_response(413, str(err))(scope, receive, send)


def create_app(settings: Settings, *, start_jobs: bool = True) -> FastAPI:
    """The emingest web application over ``settings.storage.data_root`` (a folder, or an
    ``s3://`` prefix read through ``settings.storage.root()``).

    Off loopback the job endpoints need ``serve.token``; without one this refuses to build
    (a pipeline that anyone on the network could start writes to this disk).
    """
    from emingest.serve import catalog_api, data_files, jobs_api, search_api
    from emingest.serve.jobs import JobManager

    serve = settings.serve
    if not is_loopback(serve.host) and not serve.token:
        raise ConfigError(
            f"binding {serve.host} (not loopback) needs a token for the job endpoints: "
            "pass --token or set serve.token (EMINGEST_SERVE__TOKEN)"
        )
    jobs = JobManager(settings, start=start_jobs)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()  # running volumes stop at their next tile and stay resumable

    app = FastAPI(
        lifespan=lifespan,
        title="emingest",
        version=__version__,
        description="Catalog, voxels, OME-Zarr stores, similarity search and ingest jobs.",
    )
    app.state.settings = settings
    app.state.jobs = jobs
    app.state.volumes = catalog_api.VolumeCache(settings)
    app.state.data_root = app.state.volumes.data_root  # a folder or an s3:// prefix

    @app.exception_handler(EmingestError)
    async def _emingest_error(request: Request, err: EmingestError) -> JSONResponse:
        status = status_for(err)
        if status == 500:
            log.error("%s %s: %s", request.method, request.url.path, err)
        return error_response(status, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else str(err.detail)
        if err.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path}"
        return error_response(err.status_code, message, dict(err.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'query')}: {e.get('msg')}"
            for e in err.errors()
        )
        return error_response(422, f"invalid request: {problems}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error ({type(err).__name__}: {err}); see the log")

    app.include_router(catalog_api.router)
    app.include_router(search_api.router)
    app.include_router(jobs_api.router)
    app.include_router(data_files.router)
    data_files.mount_web(app, WEB_DIR)

    # Outermost first: CORS must also wrap the 413 answers of the body limit.
    app.add_middleware(BodyLimit, limit=serve.max_request_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["range", "authorization", "content-type"],
        expose_headers=["content-range", "content-length", "accept-ranges", "x-shape", "x-dtype"],
        max_age=3600,
    )
    return app
