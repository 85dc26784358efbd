"""Transport settings: timeouts, limits, retries, segments and the download cache.

A plain pydantic model, constructible from a dict, so it can live in a source's section
(``[sources.idr.transport]``) today and in a ``[transport]`` section of the settings later.
"""

from __future__ import annotations

from pathlib import Path

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
    cache_dir: Path | None = Field(
        None, description="Download cache; default <storage.data_root>/.cache/<source>"
    )
    trust_env: bool = Field(
        True, description="Use proxy and netrc settings of the environment (requests)"
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


def default_cache_dir(data_root: Path, source: str, settings: TransportSettings) -> Path:
    """``settings.cache_dir`` when set, else ``<data_root>/.cache/<source>``."""
    if settings.cache_dir is not None:
        return Path(settings.cache_dir)
    return Path(data_root) / ".cache" / source


__all__ = ["TransportSettings", "default_cache_dir"]
