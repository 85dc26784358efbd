"""Transport settings: timeouts, limits, retries, segments and the download cache.

A plain pydantic model, constructible from a dict: the ``[transport]`` section of the settings,
whose keys a source's own ``[sources.<name>.transport]`` overrides. File archives (HTTP, FTP),
S3 metadata and chunked reads (:mod:`~emingest.transports.tensorstore`) all take theirs here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from emingest._version import __version__
from emingest.transports.retry import RetryPolicy

MiB = 1 << 20


class TransportSettings(BaseModel):
    """How bytes move: every timeout, limit and size is a setting with a sane default."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout_s: float = Field(10.0, gt=0, description="TCP/TLS connect timeout")
    read_timeout_s: float = Field(
        60.0, gt=0, description="Wait for an API answer (headers or body) before retrying"
    )
    stall_timeout_s: float = Field(
        30.0, gt=0, description="A download that receives no byte for this long is retried"
    )
    per_host_connections: int = Field(
        4, ge=1, le=64, description="Concurrent connections per host (EBI throttles above 8)"
    )
    attempts: int = Field(6, ge=1, description="Tries per request, the first included")
    backoff_initial_s: float = Field(1.0, ge=0, description="First wait before a retry")
    backoff_max_s: float = Field(60.0, ge=0, description="Longest wait between retries")
    backoff_multiplier: float = Field(2.0, ge=1.0)
    backoff_jitter: float = Field(0.5, ge=0.0, le=1.0, description="Random share of each wait")
    max_retry_after_s: float = Field(300.0, ge=0, description="Longest Retry-After obeyed")
    parallel_segments: bool = Field(
        True, description="Fetch large files as parallel Range segments (one HEAD first)"
    )
    parallel_min_bytes: int = Field(
        256 * MiB,
        ge=1,
        description="Files at least this large are fetched as parallel Range segments "
        "when the server supports Range",
    )
    segment_bytes: int = Field(64 * MiB, ge=1, description="Size of one Range segment")
    chunk_bytes: int = Field(1 * MiB, ge=1024, description="Read size while streaming")
    region_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Chunked archives (tensorstore): longest one region read or open may take "
        "before it is abandoned and retried on fresh connections (a stalled transfer)",
    )
    chunk_request_concurrency: int = Field(
        32, ge=1, description="Chunked archives: chunk GETs in flight per volume"
    )
    chunk_request_retries: int = Field(
        8, ge=0, description="Chunked archives: tensorstore's own retries of each chunk GET"
    )
    cache_dir: Path | None = Field(
        None, description="Download cache; default <storage.data_root>/.cache/<source>"
    )
    trust_env: bool = Field(
        True, description="Use proxy and netrc settings of the environment (requests)"
    )
    max_redirects: int = Field(
        5, ge=0, description="Redirects followed per request; more are refused, never retried"
    )
    redirect_hosts: list[str] = Field(
        default_factory=list,
        description="Extra hosts (host, or host:port) an archive may redirect to, such as its "
        "mirrors; any other redirect off the requested scheme, host and port is refused "
        "(an upgrade from http to https on the same host is always followed)",
    )
    user_agent: str = f"emingest/{__version__} (+https://github.com/emingest)"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts,
            initial_s=self.backoff_initial_s,
            max_s=self.backoff_max_s,
            multiplier=self.backoff_multiplier,
            jitter=self.backoff_jitter,
            max_retry_after_s=self.max_retry_after_s,
        )


def fold_legacy_keys(section: Any, moved: dict[str, tuple[str, Callable[[Any], Any]]]) -> Any:
    """A source section whose old top-level keys (``region_timeout_s`` of
    ``[sources.openorganelle]``) are moved into its ``transport`` sub-section, where they live
    now; for a pydantic ``model_validator(mode="before")``. ``moved``: old key -> (transport
    key, conversion). An old key overrides the shared ``[transport]`` value, as it did."""
    if not isinstance(section, dict) or not any(k in section for k in moved):
        return section
    out = dict(section)
    transport = dict(out.get("transport") or {})
    for old, (new, convert) in moved.items():
        if old in out:
            warnings.warn(
                f"setting {old!r} moved to transport.{new}", DeprecationWarning, stacklevel=2
            )
            transport[new] = convert(out.pop(old))
    out["transport"] = transport
    return out


def default_cache_dir(data_root: Path, source: str, settings: TransportSettings) -> Path:
    """``settings.cache_dir`` when set, else ``<data_root>/.cache/<source>``."""
    if settings.cache_dir is not None:
        return Path(settings.cache_dir)
    return Path(data_root) / ".cache" / source


__all__ = ["TransportSettings", "default_cache_dir", "fold_legacy_keys"]
