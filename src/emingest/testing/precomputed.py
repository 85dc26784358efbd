"""Neuroglancer precomputed image volumes as FlyEM publishes the hemibrain EM, served GCS-style.

The writer follows ``google/neuroglancer:src/datasource/precomputed/{volume,sharded}.md``
(archives.md §5.3): an ``info`` JSON, one folder per scale ``key``; sharded scales hold
``<shard hex>.shard`` files (compressed Morton chunk ids, identity hash, a shard index of
``2**minishard_bits`` × 16 bytes, gzip minishard indices of ``3 × n`` delta-coded uint64le,
then the chunk data), unsharded scales hold ``x0-x1_y0-y1_z0-z1`` files. Edge chunks are clipped
to the volume, as neuroglancer and TensorStore expect. A ``jpeg`` chunk is one grayscale JPEG
``x`` pixels wide and ``y·z`` high whose pixels, read row-major, are the chunk in x-fastest
order; a ``raw`` chunk is the same order as little-endian bytes.

:func:`serve_bucket` puts a folder on an :class:`~emingest.testing.http.HTTPReplica` the way
``https://storage.googleapis.com/<bucket>/<object>`` answers: Range (206/416), HEAD, ETag with
``If-None-Match`` (304), ``x-goog-*`` headers and the XML ``NoSuchKey`` 404.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np

from emingest.testing.http import HTTPReplica, RequestContext, safe_join

__all__ = [
    "SHARDING_TYPE",
    "PrecomputedScale",
    "ShardingSpec",
    "build_shards",
    "chunk_name",
    "compressed_morton_code",
    "downsample_mean",
    "encode_jpeg_chunk",
    "encode_raw_chunk",
    "level_sizes",
    "serve_bucket",
    "write_precomputed",
]

SHARDING_TYPE = "neuroglancer_uint64_sharded_v1"


# -- sharding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardingSpec:
    """A ``neuroglancer_uint64_sharded_v1`` spec with the identity hash.

    ``data_encoding=None`` leaves the key out of the JSON (the spec default, ``raw``), as the
    hemibrain EM ``info`` does (cloud-volume issue #354).
    """

    preshift_bits: int
    minishard_bits: int
    shard_bits: int
    minishard_index_encoding: str = "gzip"
    data_encoding: str | None = None
    hash: str = "identity"

    def __post_init__(self) -> None:
        if self.hash != "identity":
            raise ValueError(f"only the identity hash is written, not {self.hash!r}")
        if self.minishard_index_encoding not in ("raw", "gzip"):
            raise ValueError(f"bad minishard_index_encoding {self.minishard_index_encoding!r}")
        if self.data_encoding not in (None, "raw", "gzip"):
            raise ValueError(f"bad data_encoding {self.data_encoding!r}")
        if min(self.preshift_bits, self.minishard_bits, self.shard_bits) < 0 or (
            self.preshift_bits + self.minishard_bits + self.shard_bits > 64
        ):
            raise ValueError(f"bad sharding bits in {self!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@type": SHARDING_TYPE,
            "hash": self.hash,
            "preshift_bits": self.preshift_bits,
            "minishard_bits": self.minishard_bits,
            "shard_bits": self.shard_bits,
            "minishard_index_encoding": self.minishard_index_encoding,
        }
        if self.data_encoding is not None:
            out["data_encoding"] = self.data_encoding
        return out

    def locate(self, chunk_id: int) -> tuple[int, int]:
        """``(shard, minishard)`` of a chunk id."""
        hashed = chunk_id >> self.preshift_bits  # identity hash
        minishard = hashed & ((1 << self.minishard_bits) - 1)
        shard = (hashed >> self.minishard_bits) & ((1 << self.shard_bits) - 1)
        return shard, minishard

    def shard_file(self, shard: int) -> str:
        """``<shard as lowercase hex, zero-padded to ceil(shard_bits / 4)>.shard``."""
        digits = -(-self.shard_bits // 4)
        return f"{shard:0{digits}x}.shard"

    @classmethod
    def for_grid(
        cls, grid_xyz: Sequence[int], *, preshift_bits: int, minishard_bits: int
    ) -> ShardingSpec:
        """Shard bits that cover every chunk id of the grid (at least one)."""
        total = sum(_bits(n) for n in grid_xyz)
        return cls(preshift_bits, minishard_bits, max(1, total - preshift_bits - minishard_bits))


def _bits(n: int) -> int:
    """Bits needed to index ``n`` positions: ceil(log2(n)), 0 for n <= 1."""
    return max(0, (int(n) - 1).bit_length())


def compressed_morton_code(position_xyz: Sequence[int], grid_xyz: Sequence[int]) -> int:
    """Interleave the bits of the chunk grid position, x first, skipping bits the grid lacks."""
    bits = [_bits(n) for n in grid_xyz]
    code = 0
    out_bit = 0
    for i in range(max(bits, default=0)):
        for dim in range(3):
            if i < bits[dim]:
                code |= ((int(position_xyz[dim]) >> i) & 1) << out_bit
                out_bit += 1
    return code


def build_shards(
    chunks: Mapping[tuple[int, int, int], bytes], grid_xyz: Sequence[int], spec: ShardingSpec
) -> dict[str, bytes]:
    """Shard files (name → bytes) holding ``chunks`` (chunk grid position xyz → encoded chunk).

    Layout per shard: index, then every minishard's chunk data in chunk-id order, then the
    minishard indices; offsets are relative to the end of the shard index.
    """
    by_shard: dict[int, dict[int, list[tuple[int, bytes]]]] = {}
    for position, data in chunks.items():
        cid = compressed_morton_code(position, grid_xyz)
        shard, minishard = spec.locate(cid)
        by_shard.setdefault(shard, {}).setdefault(minishard, []).append((cid, data))
    files = {}
    n_minishards = 1 << spec.minishard_bits
    for shard, minishards in by_shard.items():
        data_parts: list[bytes] = []
        offset = 0
        indices: dict[int, bytes] = {}
        for minishard in sorted(minishards):
            entries = sorted(minishards[minishard])
            table = np.zeros((3, len(entries)), "<u8")
            prev_id = prev_end = 0
            for i, (cid, payload) in enumerate(entries):
                # chunk id minus the previous one; offset minus the end of the previous chunk
                table[:, i] = (cid - prev_id, offset - prev_end, len(payload))
                data_parts.append(payload)
                prev_id, prev_end = cid, offset + len(payload)
                offset = prev_end
            raw = table.tobytes()
            indices[minishard] = (
                gzip.compress(raw, mtime=0) if (spec.minishard_index_encoding == "gzip") else raw
            )
        index = np.zeros((n_minishards, 2), "<u8")
        tail = []
        for minishard in range(n_minishards):
            blob = indices.get(minishard, b"")
            index[minishard] = (offset, offset + len(blob))
            tail.append(blob)
            offset += len(blob)
        files[spec.shard_file(shard)] = index.tobytes() + b"".join(data_parts) + b"".join(tail)
    return files


# -- chunks and pyramids ----------------------------------------------------------------------


def encode_jpeg_chunk(chunk_zyx: np.ndarray, quality: int = 95) -> bytes:
    """A grayscale JPEG ``x`` wide and ``y·z`` high: row-major pixels = x-fastest voxels."""
    z, y, x = chunk_zyx.shape
    image = np.ascontiguousarray(chunk_zyx, np.uint8).reshape(z * y, x)
    return bytes(imagecodecs.jpeg_encode(image, level=quality))


def encode_raw_chunk(chunk_zyx: np.ndarray) -> bytes:
    """Little-endian voxels, x fastest (C order of z, y, x)."""
    arr = np.ascontiguousarray(chunk_zyx)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def chunk_name(start_xyz: Sequence[int], stop_xyz: Sequence[int]) -> str:
    """Unsharded chunk file name ``x0-x1_y0-y1_z0-z1`` (stops exclusive)."""
    return "_".join(f"{a}-{b}" for a, b in zip(start_xyz, stop_xyz, strict=True))


def downsample_mean(a: np.ndarray, *, zero_beyond: bool = False) -> np.ndarray:
    """2× mean over 2×2×2 blocks (z, y, x), rounded half to even; sizes round up.

    An odd trailing block averages the voxels it has (what edge replication gives), unless
    ``zero_beyond``: then the voxels past the array count as zeros, as they do when the array
    is the data corner of a larger, otherwise empty volume.
    """
    shape = tuple(-(-s // 2) for s in a.shape)
    padded = np.zeros(tuple(2 * s for s in shape), np.float64)
    padded[: a.shape[0], : a.shape[1], : a.shape[2]] = a
    sums = padded.reshape(shape[0], 2, shape[1], 2, shape[2], 2).sum(axis=(1, 3, 5))
    if zero_beyond:
        counts = np.float64(8.0)
    else:
        ones = np.zeros_like(padded)
        ones[: a.shape[0], : a.shape[1], : a.shape[2]] = 1.0
        counts = ones.reshape(shape[0], 2, shape[1], 2, shape[2], 2).sum(axis=(1, 3, 5))
    return np.rint(sums / counts).astype(a.dtype)


@dataclass
class PrecomputedScale:
    """One scale of a precomputed image volume; ``data`` is its non-empty corner (z, y, x)."""

    key: str
    resolution: tuple[float, float, float]
    size_xyz: tuple[int, int, int]
    data: np.ndarray
    encoding: str = "jpeg"
    sharding: ShardingSpec | None = None
    chunk_xyz: tuple[int, int, int] = (64, 64, 64)
    voxel_offset: tuple[int, int, int] = (0, 0, 0)
    files: list[str] = field(default_factory=list)

    @property
    def grid_xyz(self) -> tuple[int, int, int]:
        return tuple(-(-s // c) for s, c in zip(self.size_xyz, self.chunk_xyz, strict=True))  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "size": list(self.size_xyz),
            "resolution": list(self.resolution),
            "voxel_offset": list(self.voxel_offset),
            "chunk_sizes": [list(self.chunk_xyz)],
            "encoding": self.encoding,
        }
        if self.sharding is not None:
            out["sharding"] = self.sharding.to_json()
        return out

    def chunks(self, quality: int) -> Iterator[tuple[tuple[int, int, int], str, bytes]]:
        """``(grid position xyz, unsharded name, encoded bytes)`` of every chunk with data."""
        cx, cy, cz = self.chunk_xyz
        dz, dy, dx = self.data.shape
        for gz in range(-(-dz // cz)):
            for gy in range(-(-dy // cy)):
                for gx in range(-(-dx // cx)):
                    start = (gx * cx, gy * cy, gz * cz)
                    stop = tuple(
                        min(s + c, n)
                        for s, c, n in zip(start, self.chunk_xyz, self.size_xyz, strict=True)
                    )
                    block = np.zeros(
                        (stop[2] - start[2], stop[1] - start[1], stop[0] - start[0]),
                        self.data.dtype,
                    )
                    part = self.data[start[2] : stop[2], start[1] : stop[1], start[0] : stop[0]]
                    block[: part.shape[0], : part.shape[1], : part.shape[2]] = part
                    if self.encoding == "jpeg":
                        payload = encode_jpeg_chunk(block, quality)
                    elif self.encoding == "raw":
                        payload = encode_raw_chunk(block)
                    else:
                        raise ValueError(f"cannot write encoding {self.encoding!r}")
                    yield (gx, gy, gz), chunk_name(start, stop), payload


def write_precomputed(
    folder: Path,
    scales: Sequence[PrecomputedScale],
    *,
    data_type: str = "uint8",
    jpeg_quality: int = 95,
) -> dict[str, Any]:
    """Write ``info`` and every scale's chunk or shard files under ``folder``; return the info."""
    folder.mkdir(parents=True, exist_ok=True)
    info = {
        "@type": "neuroglancer_multiscale_volume",
        "type": "image",
        "data_type": data_type,
        "num_channels": 1,
        "scales": [s.to_json() for s in scales],
    }
    for scale in scales:
        target = folder / scale.key
        target.mkdir(parents=True, exist_ok=True)
        if scale.sharding is None:
            for _, name, payload in scale.chunks(jpeg_quality):
                _write(target / name, payload)
                scale.files.append(name)
        else:
            chunks = {pos: payload for pos, _, payload in scale.chunks(jpeg_quality)}
            for name, payload in build_shards(chunks, scale.grid_xyz, scale.sharding).items():
                _write(target / name, payload)
                scale.files.append(name)
    _write(folder / "info", json.dumps(info, indent=2).encode())
    return info


def _write(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


# -- serving like storage.googleapis.com ---------------------------------------------------------


def serve_bucket(
    replica: HTTPReplica, bucket: str, root: Path, *, aliases: Mapping[str, str] | None = None
) -> None:
    """Serve ``root`` as ``/<bucket>/<object>`` the way the GCS XML/HTTPS endpoint does.

    ``aliases`` maps an object prefix to another (``{"emdata/raw/jpeg/": "emdata/clahe_yz/jpeg/"}``)
    so two published volumes can share one folder.
    """
    aliases = dict(aliases or {})
    etags: dict[tuple[str, float, int], str] = {}

    def not_found(ctx: RequestContext, name: str) -> None:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code>"
            "<Message>The specified key does not exist.</Message>"
            f"<Details>No such object: {bucket}/{name}</Details></Error>"
        )
        ctx.send_bytes(body.encode(), "application/xml; charset=UTF-8", status=404)

    def handle(ctx: RequestContext) -> None:
        name = ctx.match.group("object")
        stored = name
        for prefix, target in aliases.items():
            if stored.startswith(prefix):
                stored = target + stored[len(prefix) :]
                break
        path = safe_join(root, stored) if stored and not stored.endswith("/") else None
        if path is None or not path.is_file():
            not_found(ctx, name)
            return
        stat = path.stat()
        key = (str(path), stat.st_mtime, stat.st_size)
        body = path.read_bytes()
        if key not in etags:
            etags[key] = hashlib.md5(body).hexdigest()  # GCS ETags are MD5s
        etag = f'"{etags[key]}"'
        generation = str(int(stat.st_mtime * 1e6))
        headers = {
            "ETag": etag,
            "Cache-Control": "public, max-age=3600",
            "x-goog-generation": generation,
            "x-goog-metageneration": "1",
            "x-goog-stored-content-encoding": "identity",
            "x-goog-stored-content-length": str(len(body)),
            "x-goog-storage-class": "STANDARD",
        }
        content_type = "application/json" if path.name == "info" else "application/octet-stream"
        if_none = ctx.header("If-None-Match")
        if if_none is not None and etag in [t.strip() for t in if_none.split(",")]:
            ctx.send_bytes(b"", content_type, status=304, headers=headers)
            return
        if_match = ctx.header("If-Match")
        if if_match is not None and etag not in [t.strip() for t in if_match.split(",")]:
            body412 = (
                "<?xml version='1.0' encoding='UTF-8'?><Error><Code>PreconditionFailed</Code>"
                "<Message>At least one of the pre-conditions you specified did not hold."
                "</Message></Error>"
            )
            ctx.send_bytes(body412.encode(), "application/xml; charset=UTF-8", status=412)
            return
        ctx.send_bytes(
            body, content_type, headers=headers, ranged=True, last_modified=stat.st_mtime
        )

    replica.route("GET", "/" + re.escape(bucket) + r"/(?P<object>.*)", handle)


def level_sizes(size_xyz: Sequence[int], levels: int) -> list[tuple[int, int, int]]:
    """Sizes of ``levels`` 2× levels, rounding up as downsamplers do."""
    x, y, z = (int(s) for s in size_xyz)
    return [(-(-x // 2**k), -(-y // 2**k), -(-z // 2**k)) for k in range(levels)]
