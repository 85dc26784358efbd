"""A loopback replica of the Janelia FlyEM hemibrain grayscale (archives.md §5, 7.5): DVID and GCS.

One port serves both doors to the same synthetic volume:

* DVID's REST API for repo ``a89eb3af216a46cdba81204d8f954786`` (prefixes match, as DVID's do)
  with the ``uint8blk`` instances ``grayscale`` (stored exact) and ``grayscalejpeg`` (stored as
  JPEG blocks, so its ``/raw`` is lossy): server, repo and instance ``info``; ``/raw/0_1_2``
  (ZYX bytes, any alignment, zero outside the data, a payload limit, ``throttle=true`` → 503
  while :attr:`FlyEMReplica.throttle` is set); ``/subvolblocks`` and ``/specificblocks`` (block
  records ``<int32le bx, by, bz, nbytes><data>``, JPEG by default, ``compression=uncompressed``
  for raw 64³ blocks; unset blocks left out). Errors are DVID's: ``"<msg> (<path>)."``, 400.
* ``https://storage.googleapis.com/neuroglancer-janelia-flyem-hemibrain/emdata/{clahe_yz,raw}/jpeg``
  as a neuroglancer precomputed volume: sharded JPEG scales and one unsharded ``raw`` scale.

``full_extents=True`` advertises the real extents (34427 × 39725 × 41394 xyz) while the data
stays the synthetic corner at the origin; everything past it reads as zeros (DVID blocks there
are unset, precomputed chunks and shards there are missing). Voxels are made per request::

    with FlyEMReplica() as fe:
        requests.get(f"{fe.dvid_url}/api/node/{fe.uuid[:5]}/grayscale/raw/0_1_2/10_20_30/5_6_7")
"""

from __future__ import annotations

import re
import shutil
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np

from emingest.testing.http import HTTPReplica, RequestContext
from emingest.testing.precomputed import (
    PrecomputedScale,
    ShardingSpec,
    downsample_mean,
    level_sizes,
    serve_bucket,
    write_precomputed,
)
from emingest.testing.synthetic import SyntheticEM

__all__ = ["BUCKET", "HEMIBRAIN_EXTENTS_XYZ", "UUID", "FlyEMReplica"]

UUID = "a89eb3af216a46cdba81204d8f954786"
BUCKET = "neuroglancer-janelia-flyem-hemibrain"
HEMIBRAIN_EXTENTS_XYZ = (34427, 39725, 41394)
"""Pixel-perfect extents [0, 0, 0]–[34427, 39725, 41394) of the aligned grayscale (§5.1)."""
BLOCK = 64
VOXEL_NM = 8.0
INSTANCES = ("grayscale", "grayscalejpeg")
DEFAULT_PAYLOAD_LIMIT = 16 << 20

Region = tuple[slice, slice, slice]


class FlyEMReplica(HTTPReplica):
    """DVID and precomputed hemibrain grayscale on one loopback port (see the module docstring).

    ``shape`` is the synthetic data (z, y, x). ``root`` receives the precomputed files (a
    temporary folder, removed on :meth:`stop`, when None); the pyramid is built from the whole
    array, so for a big DVID-only volume pass ``precomputed=False`` and DVID makes each request's
    voxels alone. ``levels`` scales are written: all but the last sharded JPEG (quality
    ``jpeg_quality``, also that of the ``grayscalejpeg`` blocks), the last unsharded ``raw``.
    ``payload_limit`` (bytes) and :attr:`throttle` may be changed while the server runs; so may
    :attr:`faults`, which every route obeys.
    """

    uuid = UUID
    instance = "grayscale"
    jpeg_instance = "grayscalejpeg"
    bucket = BUCKET

    def __init__(
        self,
        root: Path | None = None,
        *,
        shape: tuple[int, int, int] = (200, 256, 288),
        seed: int = 0,
        full_extents: bool = False,
        payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        jpeg_quality: int = 95,
        levels: int = 3,
        precomputed: bool = True,
    ) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError("levels must be at least 2 (sharded JPEG scales, then raw)")
        self.shape: tuple[int, int, int] = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.seed = seed
        self.full_extents = full_extents
        self.payload_limit = payload_limit
        self.jpeg_quality = jpeg_quality
        self.throttle = False
        """While True, ``throttle=true`` requests to ``/raw`` and ``/subvolblocks`` get 503."""
        self.em = SyntheticEM(self.shape, "uint8", seed)
        data_xyz = (self.shape[2], self.shape[1], self.shape[0])
        self.extents_xyz = HEMIBRAIN_EXTENTS_XYZ if full_extents else data_xyz
        if any(d > e for d, e in zip(data_xyz, self.extents_xyz, strict=True)):
            raise ValueError(f"shape {shape} exceeds the hemibrain extents")
        self._blocks: dict[tuple[str, int, int, int], bytes] = {}
        self._lock = threading.Lock()
        self.created = "2019-10-08T15:57:20.468413137-04:00"

        self._tmp: str | None = None
        if root is None:
            self._tmp = tempfile.mkdtemp(prefix="flyem-replica-")
            root = Path(self._tmp)
        self.root = Path(root)
        self.scales: list[PrecomputedScale] = []
        self.info: dict[str, Any] = {}
        if precomputed:
            self.scales = self._pyramid(levels)
            self.info = write_precomputed(
                self.root / "emdata" / "clahe_yz" / "jpeg", self.scales, jpeg_quality=jpeg_quality
            )

        self.route("GET", r"/api/server/info/?", self._server_info)
        self.route("GET", r"/api/repos/info/?", self._repos_info)
        self.route("GET", r"/api/repo/(?P<uuid>[^/]+)/info/?", self._repo_info)
        self.route("GET", r"/api/node/(?P<uuid>[^/]+)/(?P<inst>[^/]+)/(?P<rest>.+)", self._node)
        self.route("GET", r"/api/.*", self._not_found)
        serve_bucket(self, BUCKET, self.root, aliases={"emdata/raw/jpeg/": "emdata/clahe_yz/jpeg/"})

    # -- public ----------------------------------------------------------------------------------

    @property
    def dvid_url(self) -> str:
        return self.url

    @property
    def precomputed_url(self) -> str:
        """The ``emdata/clahe_yz/jpeg`` volume (no trailing slash)."""
        return f"{self.url}/{BUCKET}/emdata/clahe_yz/jpeg"

    @property
    def raw_precomputed_url(self) -> str:
        """The ``emdata/raw/jpeg`` volume; same content as :attr:`precomputed_url` here."""
        return f"{self.url}/{BUCKET}/emdata/raw/jpeg"

    @property
    def max_point_xyz(self) -> tuple[int, int, int]:
        """DVID's inclusive ``MaxPoint``."""
        x, y, z = self.extents_xyz
        return (x - 1, y - 1, z - 1)

    def expected(self, region: Region, instance: str = "grayscale") -> np.ndarray:
        """What DVID ``/raw`` returns for ``region`` (z, y, x slices in absolute voxels).

        Open ends default to 0 and the advertised extents; anything outside the data is 0.
        ``instance="grayscalejpeg"`` gives the JPEG-decoded blocks that instance stores.
        """
        bounds = []
        for sl, n in zip(region, self.extents_xyz[::-1], strict=True):
            start = 0 if sl.start is None else int(sl.start)
            stop = n if sl.stop is None else int(sl.stop)
            bounds.append((start, max(start, stop)))
        (z0, z1), (y0, y1), (x0, x1) = bounds
        return self._read((z0, y0, x0), (z1 - z0, y1 - y0, x1 - x0), instance)

    def expected_scale(self, k: int) -> np.ndarray:
        """Scale ``k`` of the precomputed pyramid (z, y, x), exact for the ``raw`` scale.

        Level k+1 is the rounded 2× mean of level k; its shape is the data corner at that
        scale (the whole volume unless ``full_extents``).
        """
        if not self.scales:
            raise RuntimeError("this replica was made with precomputed=False")
        return self.scales[k].data

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> FlyEMReplica:
        self.start()
        return self

    # -- data ------------------------------------------------------------------------------------

    def _pyramid(self, levels: int) -> list[PrecomputedScale]:
        sizes = level_sizes(self.extents_xyz, levels)
        data = self.em.array()
        out = []
        for k, size in enumerate(sizes):
            if k:
                data = downsample_mean(data, zero_beyond=self.full_extents)
            res = VOXEL_NM * 2**k
            grid = tuple(-(-s // BLOCK) for s in size)
            last = k == levels - 1
            if self.full_extents:  # the layout the hemibrain v1.x segmentation uses
                sharding = ShardingSpec.for_grid(grid, preshift_bits=9, minishard_bits=6)
            else:  # small volume: few bits, so there are several shards and minishards
                sharding = ShardingSpec.for_grid(grid, preshift_bits=2, minishard_bits=1)
            out.append(
                PrecomputedScale(
                    key=f"{res:.1f}x{res:.1f}x{res:.1f}",
                    resolution=(res, res, res),
                    size_xyz=size,
                    data=data,
                    encoding="raw" if last else "jpeg",
                    sharding=None if last else sharding,
                    chunk_xyz=(BLOCK, BLOCK, BLOCK),
                )
            )
        return out

    def _read(
        self, offset: tuple[int, int, int], size: tuple[int, int, int], instance: str
    ) -> np.ndarray:
        """Voxels of the box at ``offset`` (z, y, x) of ``size``, zero outside the data."""
        out = np.zeros(size, np.uint8)
        lo = [max(o, 0) for o in offset]
        hi = [min(o + s, n) for o, s, n in zip(offset, size, self.shape, strict=True)]
        if any(h <= low for low, h in zip(lo, hi, strict=True)):
            return out
        dst = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, offset, strict=True))
        if instance == "grayscale":
            out[dst] = self.em.read((slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])))
            return out
        # grayscalejpeg stores JPEG blocks: assemble the decoded blocks
        ranges = [range(a // BLOCK, (b - 1) // BLOCK + 1) for a, b in zip(lo, hi, strict=True)]
        for bz in ranges[0]:
            for by in ranges[1]:
                for bx in ranges[2]:
                    block = self._decoded_block(bx, by, bz)
                    origin = (bz * BLOCK, by * BLOCK, bx * BLOCK)
                    a = [max(lo[i], origin[i]) for i in range(3)]
                    b = [min(hi[i], origin[i] + BLOCK) for i in range(3)]
                    out[tuple(slice(a[i] - offset[i], b[i] - offset[i]) for i in range(3))] = block[
                        tuple(slice(a[i] - origin[i], b[i] - origin[i]) for i in range(3))
                    ]
        return out

    def _block_is_set(self, bx: int, by: int, bz: int) -> bool:
        """DVID stores a block only where there is data."""
        return all(0 <= b * BLOCK < n for b, n in zip((bz, by, bx), self.shape, strict=True))

    def _raw_block(self, bx: int, by: int, bz: int) -> np.ndarray:
        return self._read((bz * BLOCK, by * BLOCK, bx * BLOCK), (BLOCK, BLOCK, BLOCK), "grayscale")

    def _jpeg_block(self, bx: int, by: int, bz: int) -> bytes:
        """The stored JPEG of a block: 64 wide, 4096 high, rows are (z, y) in order."""
        key = ("jpeg", bx, by, bz)
        with self._lock:
            cached = self._blocks.get(key)
        if cached is None:
            image = self._raw_block(bx, by, bz).reshape(BLOCK * BLOCK, BLOCK)
            cached = bytes(imagecodecs.jpeg_encode(image, level=self.jpeg_quality))
            with self._lock:
                if len(self._blocks) > 4096:
                    self._blocks.clear()
                self._blocks[key] = cached
        return cached

    def _decoded_block(self, bx: int, by: int, bz: int) -> np.ndarray:
        if not self._block_is_set(bx, by, bz):
            return np.zeros((BLOCK,) * 3, np.uint8)
        image = imagecodecs.jpeg_decode(self._jpeg_block(bx, by, bz))
        return np.asarray(image, np.uint8).reshape(BLOCK, BLOCK, BLOCK)

    def _block_record(self, bx: int, by: int, bz: int, compression: str) -> bytes:
        if compression == "uncompressed":
            payload = self._raw_block(bx, by, bz).tobytes()
        else:
            payload = self._jpeg_block(bx, by, bz)
        return struct.pack("<iiii", bx, by, bz, len(payload)) + payload

    # -- DVID JSON -------------------------------------------------------------------------------

    def instance_info(self, name: str, *, extents: bool = True) -> dict[str, Any]:
        """An instance's ``info`` as DVID's ``MarshalJSONExtents`` writes it (points xyz)."""
        max_point = list(self.max_point_xyz)
        compression = (
            f"jpeg compression, level {self.jpeg_quality}"
            if name == "grayscalejpeg"
            else "LZ4 compression, level -1"
        )
        out: dict[str, Any] = {
            "Base": {
                "TypeName": "uint8blk",
                "TypeURL": "github.com/janelia-flyem/dvid/datatype/imageblk/uint8.go",
                "TypeVersion": "0.2",
                "DataUUID": f"{UUID[:24]}{INSTANCES.index(name):08x}",
                "Name": name,
                "RepoUUID": UUID,
                "Compression": compression,
                "Checksum": "No checksum",
                "Syncs": [],
                "Versioned": False,
                "KVStore": "gbucket@hemibrain-dvid",
                "LogStore": "",
                "Tags": {},
            },
            "Extended": {
                "Values": [{"DataType": "uint8", "Label": "uint8"}],
                "Interpolable": True,
                "BlockSize": [BLOCK, BLOCK, BLOCK],
                "VoxelSize": [VOXEL_NM, VOXEL_NM, VOXEL_NM],
                "VoxelUnits": ["nanometers", "nanometers", "nanometers"],
                "MinPoint": [0, 0, 0],
                "MaxPoint": max_point,
                "MinIndex": [0, 0, 0],
                "MaxIndex": [p // BLOCK for p in max_point],
                "Background": 0,
                "GridStore": "",
                "ScaleLevel": 0,
            },
        }
        if extents:
            out["Extents"] = {"MinPoint": [0, 0, 0], "MaxPoint": max_point}
        return out

    def repo_info(self) -> dict[str, Any]:
        node = {
            "UUID": UUID,
            "Branch": "",
            "Note": "",
            "Log": [],
            "Locked": True,
            "Parents": [],
            "Children": [],
            "Created": self.created,
            "Updated": self.created,
            "VersionID": 1,
        }
        return {
            "Root": UUID,
            "Alias": "hemibrain",
            "Description": "hemibrain aligned grayscale (emingest loopback replica)",
            "Log": [],
            "Properties": {},
            "DataInstances": {n: self.instance_info(n, extents=False) for n in INSTANCES},
            "DAG": {"Root": UUID, "Nodes": {"1": node}},
            "MutationID": 0,
            "Created": self.created,
            "Updated": self.created,
        }

    # -- DVID routes -----------------------------------------------------------------------------

    def _bad_request(self, ctx: RequestContext, message: str) -> None:
        """DVID's ``server.BadRequest``: ``"<message> (<path>)."`` as text, 400."""
        ctx.send_text(f"{message} ({ctx.path}).\n", status=400)

    def _not_found(self, ctx: RequestContext) -> None:
        ctx.send_text(f"Could not find the URL: {ctx.path}\n", status=404)

    def _match_uuid(self, ctx: RequestContext, given: str) -> bool:
        if UUID.startswith(given):
            return True
        self._bad_request(ctx, f"Could not find UUID with partial match to {given}!")
        return False

    def _server_info(self, ctx: RequestContext) -> None:
        ctx.send_json(
            {
                "Cores": "16",
                "Maximum Cores": "16",
                "DVID Version": "v1.0.0-emingest-replica",
                "Datastore Version": "0.10.0",
                "Mode": "read only",
                "Kafka Servers": "",
                "Server time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "Server uptime": "1h0m0s",
                "Storage backend": "gbucket@hemibrain-dvid",
            }
        )

    def _repos_info(self, ctx: RequestContext) -> None:
        ctx.send_json({UUID: self.repo_info()})

    def _repo_info(self, ctx: RequestContext) -> None:
        if self._match_uuid(ctx, ctx.match.group("uuid")):
            ctx.send_json(self.repo_info())

    def _node(self, ctx: RequestContext) -> None:
        if not self._match_uuid(ctx, ctx.match.group("uuid")):
            return
        name = ctx.match.group("inst")
        if name not in INSTANCES:
            self._bad_request(ctx, "invalid data instance name")
            return
        parts = ctx.match.group("rest").rstrip("/").split("/")
        keyword, args = parts[0], parts[1:]
        if keyword == "info" and not args:
            ctx.send_json(self.instance_info(name))
        elif keyword == "help":
            ctx.send_text("API for image block datatype (emingest replica of uint8blk)\n")
        elif keyword in ("raw", "isotropic"):
            self._raw(ctx, name, keyword, args)
        elif keyword == "subvolblocks":
            self._subvolblocks(ctx, args)
        elif keyword == "specificblocks":
            self._specificblocks(ctx)
        else:
            host = ctx.header("Host") or "unknown"
            ctx.send_text(
                f'Bad API call ({ctx.path}) for data "{name}".  '
                f"See API help at http://{host}/api/help/uint8blk\n",
                status=400,
            )

    def _throttled(self, ctx: RequestContext) -> bool:
        if ctx.param("throttle") not in ("on", "true") or not self.throttle:
            return False
        self.faults.fire("throttled")
        ctx.send_text("Server already running 1 throttled operations (max = 1)\n", status=503)
        return True

    def _parse_box(
        self, ctx: RequestContext, size_str: str, offset_str: str
    ) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """``(offset, size)`` in x, y, z from DVID's ``sx_sy_sz`` / ``x_y_z`` strings."""
        points = []
        for text in (offset_str, size_str):
            fields = text.split("_")
            bad = next((f for f in fields if not _is_int(f)), None)
            if bad is not None:
                self._bad_request(ctx, f'strconv.Atoi: parsing "{bad}": invalid syntax')
                return None
            points.append(tuple(int(f) for f in fields))
        offset, size = points
        if len(offset) != 3 or len(size) != 3:
            self._bad_request(ctx, "must specify 3D subvolumes")
            return None
        return offset, size

    def _raw(self, ctx: RequestContext, name: str, keyword: str, args: list[str]) -> None:
        if len(args) < 3:
            self._bad_request(ctx, f'"{keyword}" must be followed by shape/size/offset')
            return
        shape_str, size_str, offset_str = args[:3]
        if shape_str != "0_1_2":
            self._bad_request(ctx, f"the replica serves 3d requests (0_1_2) only, not {shape_str}")
            return
        if self._throttled(ctx):
            return
        box = self._parse_box(ctx, size_str, offset_str)
        if box is None:
            return
        (x, y, z), (sx, sy, sz) = box
        if min(sx, sy, sz) <= 0:
            self._bad_request(ctx, f"Illegal geometry requested: size {size_str} at {offset_str}")
            return
        request_size = sx * sy * sz
        if request_size > self.payload_limit:
            self._bad_request(
                ctx,
                f"Requested payload ({request_size} bytes) exceeds this DVID server's set "
                f"limit ({self.payload_limit})",
            )
            return
        data = self._read((z, y, x), (sz, sy, sx), name)
        fmt = args[3] if len(args) > 3 else ""
        if fmt in ("jpeg", "jpg"):  # the box flattened to an X × (Y·Z) image
            image = data.reshape(sz * sy, sx)
            ctx.send_bytes(bytes(imagecodecs.jpeg_encode(image, level=80)), "image/jpeg")
        else:
            ctx.send_bytes(data.tobytes(), "application/octet-stream")

    def _compression(self, ctx: RequestContext) -> str | None:
        compression = ctx.param("compression", "") or ""
        if compression not in ("", "jpeg", "uncompressed"):
            self._bad_request(
                ctx, f"don't understand 'compression' query string value: {compression}"
            )
            return None
        return compression

    def _subvolblocks(self, ctx: RequestContext, args: list[str]) -> None:
        if len(args) < 2:
            self._bad_request(ctx, '"subvolblocks" must be followed by size/offset')
            return
        if self._throttled(ctx):
            return
        box = self._parse_box(ctx, args[0], args[1])
        if box is None:
            return
        offset, size = box
        end = tuple(o + s - 1 for o, s in zip(offset, size, strict=True))
        if any(v % BLOCK for v in (*offset, *size)) or min(size) <= 0:
            self._bad_request(
                ctx,
                "cannot store labels in non-block aligned geometry "
                f"({offset[0]},{offset[1]},{offset[2]}) -> ({end[0]},{end[1]},{end[2]})",
            )
            return
        compression = self._compression(ctx)
        if compression is None:
            return
        first = [o // BLOCK for o in offset]
        count = [s // BLOCK for s in size]
        # only blocks that hold data exist; iterate just over those (z, then y, then x)
        data_blocks = [-(-n // BLOCK) for n in self.shape[::-1]]  # x, y, z
        rng = [
            range(max(0, f), min(f + c, d))
            for f, c, d in zip(first, count, data_blocks, strict=True)
        ]
        records = [
            self._block_record(bx, by, bz, compression)
            for bz in rng[2]
            for by in rng[1]
            for bx in rng[0]
        ]
        ctx.send_bytes(b"".join(records), "application/octet-stream")

    def _specificblocks(self, ctx: RequestContext) -> None:
        compression = self._compression(ctx)
        if compression is None:
            return
        text = ctx.param("blocks", "") or ""
        prefetch = ctx.param("prefetch") in ("on", "true")
        if not text or prefetch:
            ctx.send_bytes(b"", "application/octet-stream")
            return
        fields = text.split(",")
        if len(fields) % 3:
            self._bad_request(ctx, "block query string should be three coordinates per block")
            return
        bad = next((f for f in fields if not _is_int(f)), None)
        if bad is not None:
            self._bad_request(ctx, f'strconv.Atoi: parsing "{bad}": invalid syntax')
            return
        coords = [int(f) for f in fields]
        records = [
            self._block_record(bx, by, bz, compression)
            for bx, by, bz in zip(coords[0::3], coords[1::3], coords[2::3], strict=True)
            if self._block_is_set(bx, by, bz)
        ]
        ctx.send_bytes(b"".join(records), "application/octet-stream")


def _is_int(text: str) -> bool:
    """What Go's ``strconv.Atoi`` accepts."""
    return re.fullmatch(r"[+-]?[0-9]+", text) is not None
