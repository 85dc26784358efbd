"""The Dask client of a run: a LocalCluster emingest starts, or a running scheduler.

Shared by the pipeline's region executor and the embedder's block executor, so both start
their workers alike (``worker_environ``) and say the same thing when Dask is missing or the
scheduler cannot be reached.
"""

from __future__ import annotations

from typing import Any

from emingest.config import PipelineSettings
from emingest.errors import ConfigError


def worker_environ() -> dict[str, Any]:
    """The environment LocalCluster workers start with: Dask's, less its
    ``MALLOC_TRIM_THRESHOLD_`` (setting it turns off glibc's adaptive mmap threshold, so every
    tile-sized buffer is a fresh mmap whose pages fault in again: level-0 tasks took twice as
    long here), plus the two malloc arenas the driver uses (``emingest.memory``)."""
    from dask import config as dask_config

    environ = dict(dask_config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    environ.setdefault("MALLOC_ARENA_MAX", 2)
    return environ


class DaskClient:
    """``client`` for ``settings.scheduler``: ``"local"`` starts a LocalCluster of
    ``settings.workers`` single-threaded processes (closed with this object); an address
    (``tcp://host:8786``) connects to a running scheduler. One run may share it between its
    ingest and its embedding: whoever is lent it never closes it."""

    def __init__(self, settings: PipelineSettings) -> None:
        try:
            from dask import config as dask_config
            from distributed import Client, LocalCluster
        except ImportError as err:
            raise ConfigError(
                "pipeline.executor = 'dask' needs Dask distributed: pip install 'emingest[dask]'"
            ) from err
        self._cluster: Any = None
        if settings.scheduler == "local":
            with dask_config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
                self._cluster = LocalCluster(
                    n_workers=settings.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # a free port: never collide with another run
                )
            self.client: Any = Client(self._cluster)
        else:
            try:
                self.client = Client(settings.scheduler, timeout=settings.scheduler_timeout_s)
            except OSError as err:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {settings.scheduler}: {err}"
                ) from err

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


__all__ = ["DaskClient", "worker_environ"]
