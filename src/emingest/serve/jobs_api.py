"""Pipelines as endpoints: ``/api/jobs``. With ``serve.token`` set (always, off loopback) every
job endpoint needs ``Authorization: Bearer <token>``."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from emingest.serve.jobs import JobManager, JobRequest


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token = request.app.state.settings.serve.token
    if not token:
        return
    given = ""
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401,
            "job endpoints need the server's token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(tags=["jobs"], dependencies=[Depends(require_token)])


class JobBody(BaseModel):
    """As ``emingest ingest SOURCE IDS...``: ``options`` are the source's discover options."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(max_length=100, examples=["epfl"])
    ids: list[Annotated[str, Field(max_length=1000)]] = Field(default_factory=list, max_length=1000)
    options: dict[str, Any] = Field(default_factory=dict)
    source_settings: dict[str, Any] = Field(default_factory=dict)
    voxel_size_nm: list[float] | None = Field(None, min_length=3, max_length=3)
    force: bool = False
    embed: bool = False


def _jobs(request: Request) -> JobManager:
    return request.app.state.jobs


@router.post("/api/jobs", status_code=202, summary="Start an ingest job (the CLI's pipeline)")
def create_job(request: Request, body: JobBody) -> dict[str, Any]:
    if body.embed:
        try:
            import emingest.vectors  # noqa: F401
        except ImportError as err:
            raise HTTPException(
                501, f"embedding needs emingest.vectors, not installed: {err}"
            ) from err
    job = _jobs(request).submit(JobRequest(**body.model_dump()))
    return job.to_dict()


@router.get("/api/jobs", summary="Every job, newest first (past ones from the journal)")
def list_jobs(request: Request) -> dict[str, Any]:
    return {"items": [j.to_dict() for j in _jobs(request).all()]}


@router.get("/api/jobs/{job_id}", summary="One job: status, volumes, bytes, rate, ETA, errors")
def get_job(request: Request, job_id: str) -> dict[str, Any]:
    return _jobs(request).get(job_id).to_dict()


@router.delete("/api/jobs/{job_id}", summary="Cancel a job; its volumes stay resumable")
def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    return _jobs(request).cancel(job_id).to_dict()
