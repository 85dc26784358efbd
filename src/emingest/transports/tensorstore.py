"""Chunked remote reads with tensorstore, under the same transport rules as HTTP, FTP and S3.

OpenOrganelle (zarr over the ``s3`` kvstore) and the FlyEM precomputed copy
(``neuroglancer_precomputed`` over the ``http`` kvstore) read voxels with tensorstore. What they
share lives here, once:

* the context: no chunk cache (each chunk is read once), ``chunk_request_concurrency`` GETs in
  flight, tensorstore's own per-chunk retries (``chunk_request_retries``, backoff from
  ``backoff_initial_s`` / ``backoff_max_s``) for 503s, resets and short bodies;
* open and region-read timeouts (``region_timeout_s``): a read that outlasts it is a stalled
  transfer, so it is cancelled, the handles and context are *renewed* (later reads open fresh
  connections instead of joining the stalled one) and the read is retried;
* error translation: tensorstore raises ``ValueError`` whose text starts with an absl status
  code; ``UNAVAILABLE``/``DEADLINE_EXCEEDED``/... are transient, ``NOT_FOUND`` an
  :class:`EntryNotFoundError`, ``DATA_LOSS``/``INVALID_ARGUMENT``/... a
  :class:`RemoteFormatError`;
* the region-level retry: :func:`~emingest.transports.retry.retry_call` with the transport's
  policy, like every other request.

Every knob is a :class:`~emingest.transports.settings.TransportSettings` field (``[transport]``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorstore as ts

from emingest.errors import (
    EntryNotFoundError,
    RemoteFormatError,
    SourceError,
    TransientSourceError,
)
from emingest.transports.retry import retry_call
from emingest.transports.settings import TransportSettings

TRANSIENT_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")
FORMAT_CODES = ("DATA_LOSS", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE")
KVSTORES = ("s3", "http")


def translate_error(err: ValueError, where: str) -> SourceError:
    """A tensorstore error (its message starts with an absl status code) in our tree."""
    text = str(err)
    code = text.split(":", 1)[0].strip()
    message = f"{where}: {text[:500]}"
    if code in TRANSIENT_CODES:
        return TransientSourceError(message)
    if code == "NOT_FOUND":
        return EntryNotFoundError(message)
    if code in FORMAT_CODES:
        return RemoteFormatError(message)
    return SourceError(message)


def context_spec(kvstore: str, settings: TransportSettings) -> dict[str, Any]:
    """The tensorstore context of one reader: no cache, bounded concurrency, chunk retries."""
    if kvstore not in KVSTORES:
        raise ValueError(f"kvstore {kvstore!r}: one of {KVSTORES}")
    return {
        "cache_pool": {"total_bytes_limit": 0},  # each chunk is read once
        f"{kvstore}_request_concurrency": {"limit": settings.chunk_request_concurrency},
        f"{kvstore}_request_retries": {
            "max_retries": settings.chunk_request_retries,
            "initial_delay": f"{max(settings.backoff_initial_s, 0.001)}s",
            "max_delay": f"{max(settings.backoff_max_s, 0.001)}s",
        },
    }


class TensorstoreReads:
    """Region reads of remote tensorstore arrays, opened lazily per key under one context.

    Thread-safe. A stall (no answer in ``region_timeout_s``) renews the context and every
    handle of its generation, so the retry never queues behind the stalled request.
    """

    def __init__(self, settings: TransportSettings, *, kvstore: str) -> None:
        self.settings = settings
        self.policy = settings.retry_policy()
        self._context_spec = context_spec(kvstore, settings)
        self._lock = threading.Lock()
        self._generation = 0
        self._context: ts.Context | None = None
        self._handles: dict[tuple[int, str], ts.TensorStore] = {}

    def _handle(self, key: str, spec: dict[str, Any], where: str) -> tuple[int, ts.TensorStore]:
        with self._lock:
            gen = self._generation
            if (gen, key) in self._handles:
                return gen, self._handles[(gen, key)]
            if self._context is None:
                self._context = ts.Context(self._context_spec)
            context = self._context
        try:
            handle = ts.open(spec, read=True, context=context).result(
                timeout=self.settings.region_timeout_s
            )
        except TimeoutError as err:
            self.renew(gen)
            raise TransientSourceError(
                f"{where}: opening took more than {self.settings.region_timeout_s:g} s"
            ) from err
        except ValueError as err:
            raise translate_error(err, where) from err
        with self._lock:
            self._handles.setdefault((gen, key), handle)
            return gen, self._handles[(gen, key)]

    def renew(self, gen: int) -> None:
        """Drop the context and handles of generation ``gen``: later reads open fresh ones."""
        with self._lock:
            if self._generation == gen:
                self._generation += 1
                self._context = None
                self._handles = {k: v for k, v in self._handles.items() if k[0] != gen}

    def read(
        self,
        key: str,
        spec: dict[str, Any],
        index: Callable[[ts.TensorStore], ts.TensorStore],
        where: str,
    ) -> np.ndarray:
        """``index(handle of key).read()``, with the timeout, the renewal and the retries."""

        def attempt() -> np.ndarray:
            gen, handle = self._handle(key, spec, where)
            future = index(handle).read()
            try:
                return future.result(timeout=self.settings.region_timeout_s)
            except TimeoutError as err:
                future.cancel()
                self.renew(gen)
                raise TransientSourceError(
                    f"{where}: no answer in {self.settings.region_timeout_s:g} s (stalled "
                    "transfer); retrying on fresh connections"
                ) from err
            except ValueError as err:
                raise translate_error(err, where) from err

        return retry_call(attempt, self.policy, what=where)

    def close(self) -> None:
        with self._lock:
            self._handles.clear()
            self._context = None


__all__ = ["TRANSIENT_CODES", "TensorstoreReads", "context_spec", "translate_error"]
