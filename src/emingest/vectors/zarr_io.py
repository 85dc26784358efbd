"""Zarr arrays below any data root: a folder (zarr-python's own files, as always) or an S3
prefix (the same zarr-python code over tensorstore's ``s3`` kvstore).

Embedding groups are written by zarr-python on both kinds of root, so a group on S3 holds the
very bytes a local one does; the transport to a bucket is tensorstore's kvstore
(:meth:`emingest.storage.Location.kvstore`: signed requests, retries), never boto3. Volumes are
read through tensorstore on S3 (sharded chunks are read by byte range) and through zarr-python
on a folder, as before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

import numpy as np
import tensorstore as ts
import zarr
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype

from emingest.storage import Location


def _successor(prefix: str) -> str:
    """The first key after every key starting with ``prefix`` (for a kvstore key range)."""
    return prefix + "\U0010ffff" if prefix else ""


class KvStoreZarr(Store):
    """A zarr-python store over a tensorstore kvstore spec (a folder: its ``path`` ends in
    ``/``). Picklable: it carries the spec, and opens the kvstore lazily in each process."""

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    def __init__(self, spec: dict[str, Any], *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.spec = dict(spec)
        self._kv: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "read_only": self.read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], read_only=state["read_only"])  # type: ignore[misc]

    @property
    def kv(self) -> Any:
        with self._lock:
            if self._kv is None:
                self._kv = ts.KvStore.open(self.spec).result()
            return self._kv

    def with_read_only(self, read_only: bool = False) -> KvStoreZarr:
        return type(self)(self.spec, read_only=read_only)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, KvStoreZarr)
            and other.spec == self.spec
            and other.read_only == self.read_only
        )

    def __str__(self) -> str:
        return f"{self.spec.get('driver')}://{self.spec.get('bucket', '')}/{self.spec['path']}"

    def __repr__(self) -> str:
        return f"KvStoreZarr({str(self)!r})"

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        result = await self.kv.read(key)
        if result.state != "value":
            return None
        data = bytes(result.value)
        if byte_range is not None:
            if isinstance(byte_range, RangeByteRequest):
                data = data[byte_range.start : byte_range.end]
            elif isinstance(byte_range, OffsetByteRequest):
                data = data[byte_range.offset :]
            else:  # SuffixByteRequest
                data = data[-byte_range.suffix :] if byte_range.suffix else b""
        return prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        return (await self.kv.read(key)).state == "value"

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()
        await self.kv.write(key, value.to_bytes())

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        if not await self.exists(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        self._check_writable()
        await self.kv.delete_range(ts.KvStore.KeyRange(key, key + "\x00"))

    async def _keys(self, prefix: str) -> list[str]:
        found = await self.kv.list(ts.KvStore.KeyRange(prefix, _successor(prefix)))
        return sorted(k.decode() for k in found)

    async def list(self) -> AsyncIterator[str]:
        for key in await self._keys(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await self._keys(prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        folder = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        seen: set[str] = set()
        for key in await self._keys(folder):
            child = key[len(folder) :].split("/", 1)[0]
            if child and child not in seen:
                seen.add(child)
                yield child


def zarr_store(location: Location) -> Any:
    """What ``zarr.open_*`` takes for a folder below a data root: the path of a local one
    (zarr-python's LocalStore, unchanged), a :class:`KvStoreZarr` for S3."""
    if location.is_local:
        return location.path
    return KvStoreZarr(location.kvstore())


class TensorStoreArray:
    """The little of a zarr array :func:`emingest.vectors.embed.read_by_chunks` uses
    (``shape``, ``dtype``, ``chunks``, ``array[region]``), read through tensorstore."""

    def __init__(self, array: Any) -> None:
        self._array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype.numpy_dtype)
        self.chunks = tuple(int(n) for n in array.chunk_layout.read_chunk.shape)

    def __getitem__(self, region: Any) -> np.ndarray:
        return np.asarray(self._array[region].read().result())


_CONTEXT: dict[str, Any] = {}


def open_level(location: Location) -> Any:
    """One pyramid level of an OME-Zarr store, to read: a zarr array on a folder, a
    :class:`TensorStoreArray` on S3 (with a small chunk cache: neighbouring blocks of patches
    share chunks)."""
    if location.is_local:
        return zarr.open_array(location.path, mode="r")
    if "context" not in _CONTEXT:
        limit = max(4, 2 * (os.cpu_count() or 1))
        _CONTEXT["context"] = ts.Context(
            {
                "s3_request_concurrency": {"limit": limit},
                "cache_pool": {"total_bytes_limit": 64 << 20},
            }
        )
    spec = {"driver": "zarr3", "kvstore": location.kvstore()}
    array = ts.open(spec, read=True, open=True, context=_CONTEXT["context"]).result()
    return TensorStoreArray(array)


__all__ = ["KvStoreZarr", "TensorStoreArray", "open_level", "zarr_store"]
