"""Janelia FlyEM hemibrain grayscale: DVID ``/raw`` or the neuroglancer precomputed copy on GCS.

``emingest ingest flyem --box z0:z1,y0:y1,x0:x1`` (or ``--crop N --seed S``) copies one box of
the 8 nm aligned grayscale. Two doors to the same volume (archives.md §5):

* ``via="dvid"`` (default): extents from ``/api/node/<uuid>/<instance>/info`` (points in x, y, z,
  ``MaxPoint`` inclusive; converted here to z, y, x half-open), voxels from
  ``/raw/0_1_2/<sx>_<sy>_<sz>/<x>_<y>_<z>`` (ZYX bytes) fetched as sub-boxes aligned to the
  64-voxel block grid, each at most ``max_payload_bytes``, a few in parallel, every one under
  the transport's retry policy (503 throttling, resets, stalls, short bodies).
* ``via="precomputed"``: tensorstore's ``neuroglancer_precomputed`` driver over its ``http``
  kvstore (anonymous HTTPS, no credential probing); sharded or unsharded scales, JPEG or raw.
  ``scale`` picks the scale; the box is then in that scale's voxels.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from emingest.config import DatasetSettings, Settings
from emingest.errors import (
    ConfigError,
    EntryNotFoundError,
    RemoteFormatError,
    SourceError,
    TransientSourceError,
)
from emingest.fingerprints import metadata_fingerprint
from emingest.readers import VolumeReader
from emingest.regions import Box, Region, format_box, format_region, parse_box
from emingest.sources.base import (
    Source,
    SourceOptions,
    SourceSettings,
    VolumeInfo,
    VolumeRef,
    source_settings,
)
from emingest.transports.http import HttpTransport
from emingest.transports.retry import retry_call
from emingest.transports.settings import TransportSettings, fold_legacy_keys
from emingest.transports.tensorstore import TensorstoreReads
from emingest.transports.urls import join_below

log = logging.getLogger(__name__)

HEMIBRAIN_UUID = "a89eb3af216a46cdba81204d8f954786"
DVID_BLOCK = 64
VIAS = ("dvid", "precomputed")
DEFAULT_CROP = 1000


class FlyEMSettings(SourceSettings):
    """The ``[sources.flyem]`` section."""

    dvid_url: str = Field("https://hemibrain-dvid.janelia.org", description="DVID server")
    uuid: str = Field(HEMIBRAIN_UUID, description="DVID repository node (a prefix is enough)")
    instance: str = Field("grayscale", description="DVID uint8blk instance")
    precomputed_url: str = Field(
        "https://storage.googleapis.com/neuroglancer-janelia-flyem-hemibrain/emdata/clahe_yz/jpeg",
        description="Neuroglancer precomputed volume (plain HTTPS, anonymous)",
    )
    throttle: bool = Field(
        True, description="Send DVID's throttle=true (the server may answer 503; retried)"
    )
    max_payload_bytes: int = Field(
        8 << 20,
        ge=DVID_BLOCK**3,
        description="Largest /raw request (bytes); sub-boxes are aligned to 64-voxel blocks",
    )
    fetch_threads: int = Field(4, ge=1, le=64, description="Sub-box GETs in flight per volume")
    transport: TransportSettings = Field(
        default_factory=lambda: TransportSettings.model_validate({}),
        description="Timeouts, retries and per-host connections of the DVID and info requests, "
        "and of precomputed chunk reads (region_timeout_s, chunk_request_*)",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_to_transport(cls, section: Any) -> Any:
        # these keys lived here before [transport] held every chunked read's timeouts
        return fold_legacy_keys(
            section,
            {
                "region_timeout_s": ("region_timeout_s", float),
                "http_request_concurrency": ("chunk_request_concurrency", int),
            },
        )


# -- options --------------------------------------------------------------------------------------


def crop_origin(extents: Box, size: int, seed: int) -> tuple[int, int, int]:
    """Origin (z, y, x) of a ``size``³ crop inside ``extents``, drawn by ``default_rng(seed)``."""
    if size < 1:
        raise ConfigError(f"--crop {size}: must be at least 1")
    spans = [b - a for a, b in extents]
    if any(size > n for n in spans):
        raise ConfigError(
            f"--crop {size} does not fit in the extents {format_box(extents)} (z, y, x, sizes "
            f"{spans}); choose a crop of at most {min(spans)}"
        )
    rng = np.random.default_rng(seed)
    z, y, x = (
        int(a + rng.integers(0, n - size + 1)) for (a, _), n in zip(extents, spans, strict=True)
    )
    return (z, y, x)


def check_box(box: Box, extents: Box, where: str) -> None:
    """A clear error (before any voxel is fetched) when ``box`` leaves ``extents``."""
    if any(a < lo or b > hi for (a, b), (lo, hi) in zip(box, extents, strict=True)):
        raise ConfigError(
            f"--box {format_box(box)} is outside the extents of {where}: {format_box(extents)} "
            "(z, y, x voxels, half-open); nothing was downloaded"
        )


def aligned_pieces(box: Box, max_bytes: int, itemsize: int = 1) -> list[Box]:
    """``box`` cut along a grid of block-aligned cells, each cell at most ``max_bytes``.

    The cell is a multiple of the 64-voxel DVID block on every axis (so each request touches
    whole stored blocks, except at the box's own edges); the largest axis is halved first.
    """
    spans = [-(-(b - a + (a % DVID_BLOCK)) // DVID_BLOCK) for a, b in box]  # blocks touched
    cell = list(spans)
    limit = max(1, max_bytes // (itemsize * DVID_BLOCK**3))
    while math.prod(cell) > limit:
        axis = max(range(3), key=lambda i: (cell[i], -i))
        cell[axis] = -(-cell[axis] // 2)
    step = [c * DVID_BLOCK for c in cell]
    ranges = []
    for (a, b), s in zip(box, step, strict=True):
        edges = list(range((a // s) * s, b, s))
        ranges.append([(max(a, e), min(b, e + s)) for e in edges])
    return [(z, y, x) for z in ranges[0] for y in ranges[1] for x in ranges[2]]


# -- the source -----------------------------------------------------------------------------------


class FlyEMOptions(SourceOptions):
    via: str | None = Field(None, description="dvid or precomputed (default dvid)")
    box: str | None = Field(None, description="z0:z1,y0:y1,x0:x1 in absolute voxels (half-open)")
    crop: int | None = Field(
        None, description="Random cube of N voxels (default 1000 without --box)"
    )
    seed: int | None = Field(None, description="Seed of the random crop (recorded; drawn if unset)")
    scale: int | None = Field(None, description="Precomputed scale index")


class FlyEMSource(Source):
    """``emingest ingest flyem``: one box (``box=`` or a seeded random ``crop=``) of the
    hemibrain grayscale, read through DVID or the precomputed copy (``via=``)."""

    name: ClassVar[str] = "flyem"
    description: ClassVar[str] = (
        "Copy a box or a seeded random crop of the FlyEM hemibrain (DVID or precomputed)."
    )
    ids_help: ClassVar[str] = "None: the hemibrain is one volume; choose with --box or --crop"
    settings_model: ClassVar[type[SourceSettings]] = FlyEMSettings
    replica: ClassVar[str] = "emingest.testing.replicas:FlyEMDemoReplica"
    settings_flags: ClassVar[tuple[str, ...]] = ("dvid_url", "precomputed_url")
    options_model: ClassVar[type[SourceOptions]] = FlyEMOptions

    @classmethod
    def default_datasets(cls) -> list[DatasetSettings]:
        return [
            DatasetSettings(
                name="flyem-hemibrain-crop",
                source="flyem",
                options={"via": "dvid", "crop": 1000, "seed": 20260101},
            )
        ]

    def check_request(self, spec: Sequence[str], options: Mapping[str, Any]) -> None:
        if spec:
            raise ConfigError(
                f"flyem takes no ids (got {list(spec)}); choose the region with --box or --crop"
            )
        if options.get("via") is not None and str(options["via"]).lower() not in VIAS:
            raise ConfigError(f"--via {options['via']!r}: choose one of {', '.join(VIAS)}")
        parse_box(options.get("box"))

    def preflight_urls(self) -> list[str]:
        return [f"{self.options.dvid_url.rstrip('/')}/api/server/info"]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options: FlyEMSettings = source_settings(settings, self.name, FlyEMSettings)  # type: ignore[assignment]
        self.http = HttpTransport(self.options.transport)
        self._lock = threading.Lock()
        self._info: dict[tuple[str, int], dict[str, Any]] = {}

    # -- endpoints ------------------------------------------------------------------------------

    @property
    def node_url(self) -> str:
        o = self.options
        return f"{o.dvid_url.rstrip('/')}/api/node/{o.uuid}/{o.instance}"

    @property
    def precomputed_url(self) -> str:
        return self.options.precomputed_url.rstrip("/")

    def _fetch_info(self, via: str) -> dict[str, Any]:
        with self._lock:
            cached = self._info.get((via, 0))
        if cached is not None:
            return cached
        url = f"{self.node_url}/info" if via == "dvid" else f"{self.precomputed_url}/info"
        try:
            doc = self.http.get_json(url)
        except EntryNotFoundError as err:
            raise EntryNotFoundError(f"{err}; check the flyem {_url_settings(via)}") from err
        except SourceError as err:
            if via == "dvid" and "HTTP 400" in str(err):  # DVID: unknown uuid or instance
                raise EntryNotFoundError(
                    f"{err}; check the flyem settings uuid={self.options.uuid!r}, "
                    f"instance={self.options.instance!r}"
                ) from err
            raise
        if not isinstance(doc, dict):
            raise RemoteFormatError(f"{url}: info is not a JSON object")
        with self._lock:
            self._info[(via, 0)] = doc
        return doc

    def geometry(self, via: str, scale: int = 0) -> dict[str, Any]:
        """Extents (z, y, x half-open box), dtype, voxel size (nm, z, y, x) and the info JSON."""
        doc = self._fetch_info(via)
        if via == "dvid":
            return _dvid_geometry(doc, f"{self.node_url}/info")
        geometry = _precomputed_geometry(doc, scale, f"{self.precomputed_url}/info")
        # tensorstore fetches <precomputed_url>/<key>/...: a key must stay below the volume
        join_below(self.precomputed_url, str(doc["scales"][scale].get("key", "")))
        return geometry

    # -- discover / describe / open --------------------------------------------------------------

    def discover(self, spec: Sequence[str] = (), **options: Any) -> list[VolumeRef]:
        """One volume: ``box="z0:z1,y0:y1,x0:x1"`` or a ``crop=N`` cube (default 1000) placed by
        ``seed`` (drawn and recorded when None). ``via`` is ``"dvid"`` or ``"precomputed"``;
        ``scale`` (precomputed only) picks the scale. ``spec`` is not used (one archive)."""
        if spec:
            raise ConfigError(
                f"flyem takes no ids (got {list(spec)}); choose the region with --box or --crop"
            )
        via = str(options.get("via") or "dvid").lower()
        if via not in VIAS:
            raise ConfigError(f"--via {via!r}: choose one of {', '.join(VIAS)}")
        scale = int(options.get("scale") or 0)
        if scale < 0:
            raise ConfigError(f"--scale {scale}: must be >= 0")
        if via == "dvid" and scale:
            raise ConfigError(
                "--scale applies to --via precomputed; DVID keeps its pyramid as separate "
                "instances (set the flyem setting instance, e.g. 'grayscale_1')"
            )
        box = parse_box(options.get("box"))
        crop = options.get("crop")
        seed = options.get("seed")
        if box is not None and crop is not None:
            raise ConfigError("give either --box or --crop, not both")
        geo = self.geometry(via, scale)
        extents: Box = geo["extents"]
        where = self._where(via, scale)
        if box is None:
            size = DEFAULT_CROP if crop is None else int(crop)
            seed = secrets.randbits(32) if seed is None else int(seed)
            z, y, x = crop_origin(extents, size, seed)
            box = ((z, z + size), (y, y + size), (x, x + size))
        else:
            seed = None
            crop = None
        check_box(box, extents, where)
        sizes = [b - a for a, b in box]
        size_text = str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))
        source_id = f"hemibrain-z{box[0][0]}_y{box[1][0]}_x{box[2][0]}-{size_text}"
        if scale:
            source_id += f"-s{scale}"
        name = self.options.instance if via == "dvid" else _volume_name(self.precomputed_url)
        extra: tuple[tuple[str, Any], ...] = (
            ("via", via),
            ("box", format_box(box)),
            ("seed", seed),
            ("crop", None if crop is None and seed is None else int(crop or DEFAULT_CROP)),
            ("scale", scale),
        )
        return [
            VolumeRef(source=self.name, source_id=source_id, name=name, locator=where, extra=extra)
        ]

    def _where(self, via: str, scale: int) -> str:
        if via == "dvid":
            return self.node_url
        return f"{self.precomputed_url} (scale {scale})"

    def _ref_box(self, ref: VolumeRef) -> tuple[str, int, Box]:
        via = str(ref.get("via", "dvid"))
        scale = int(ref.get("scale", 0) or 0)
        box = parse_box(ref.get("box"))
        if box is None:
            raise ConfigError(f"{ref.source_id}: the volume reference has no box")
        return via, scale, box

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        """Shape, dtype and voxel size from the info document only; a box outside the
        extents fails here, before any voxel is downloaded."""
        via, scale, box = self._ref_box(ref)
        geo = self.geometry(via, scale)
        where = self._where(via, scale)
        check_box(box, geo["extents"], where)
        shape = (box[0][1] - box[0][0], box[1][1] - box[1][0], box[2][1] - box[2][0])
        seed = ref.get("seed")
        return VolumeInfo(
            ref=ref,
            shape=shape,
            dtype=geo["dtype"],
            voxel_size_nm=geo["voxel_size_nm"],
            description=f"FlyEM hemibrain {ref.name} box {format_box(box)} via {via}"
            + (f" (crop {ref.get('crop')}, seed {seed})" if seed is not None else ""),
            download_url=self.node_url if via == "dvid" else self.precomputed_url,
            voxel_size_origin=geo["voxel_size_origin"],
            additional_metadata={
                "via": via,
                "box": format_box(box),
                "box_zyx": [list(p) for p in box],
                "crop_origin_zyx": [a for a, _ in box],
                "crop": ref.get("crop"),
                "seed": seed,
                "scale": scale if via == "precomputed" else None,
                "extents_zyx": [list(p) for p in geo["extents"]],
                "dvid_url": self.options.dvid_url if via == "dvid" else None,
                "uuid": self.options.uuid if via == "dvid" else None,
                "instance": self.options.instance if via == "dvid" else None,
                "precomputed_url": self.precomputed_url if via == "precomputed" else None,
                "dvid_info" if via == "dvid" else "precomputed_info": geo["info"],
            },
            fingerprint=metadata_fingerprint(
                self.node_url if via == "dvid" else self.precomputed_url,
                geo["info"],
                uuid=self.options.uuid if via == "dvid" else None,
            ),
        )

    def open(self, ref: VolumeRef) -> DvidReader | PrecomputedReader:
        info = self.describe(ref)
        via, scale, box = self._ref_box(ref)
        if via == "dvid":
            return DvidReader(self.http, self.node_url, box, info.dtype, self.options)
        return PrecomputedReader(self.precomputed_url, scale, box, info.dtype, self.options)


def _url_settings(via: str) -> str:
    return "settings dvid_url, uuid and instance" if via == "dvid" else "setting precomputed_url"


def _volume_name(url: str) -> str:
    """``.../emdata/clahe_yz/jpeg`` -> ``clahe_yz_jpeg``: the output name of a precomputed copy."""
    parts = [p for p in urllib.parse.urlsplit(url).path.split("/") if p]
    if "emdata" in parts:
        parts = parts[parts.index("emdata") + 1 :]
    return "_".join(parts[-2:]) or "precomputed"


def _xyz_to_zyx(point: Any, where: str, field: str) -> tuple[int, int, int]:
    try:
        x, y, z = (int(v) for v in point)
    except (TypeError, ValueError) as err:
        raise RemoteFormatError(f"{where}: {field} {point!r} is not three integers") from err
    return (z, y, x)


def _dvid_geometry(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """DVID's extents are x, y, z with an inclusive MaxPoint: here z, y, x half-open."""
    ext = doc.get("Extended") or {}
    points = doc.get("Extents") or ext
    if not isinstance(points, dict) or not isinstance(ext, dict):
        raise RemoteFormatError(f"{where}: no Extended/Extents in the instance info")
    if points.get("MaxPoint") is None:
        raise EntryNotFoundError(f"{where}: the instance holds no voxels (MaxPoint is null)")
    lo = _xyz_to_zyx(points.get("MinPoint") or [0, 0, 0], where, "MinPoint")
    hi = _xyz_to_zyx(points["MaxPoint"], where, "MaxPoint")
    extents: Box = ((lo[0], hi[0] + 1), (lo[1], hi[1] + 1), (lo[2], hi[2] + 1))
    if ext.get("GridStore"):
        raise SourceError(
            f"{where}: the instance proxies a precomputed volume (GridStore "
            f"{ext['GridStore']!r}) and has no /raw endpoint; use --via precomputed"
        )
    try:
        kind = ext["Values"][0]["DataType"]
        dtype = np.dtype(kind).newbyteorder("<")
    except (KeyError, IndexError, TypeError) as err:
        raise RemoteFormatError(f"{where}: no Extended.Values[0].DataType") from err
    voxel: tuple[float, float, float] | None = None
    units = ext.get("VoxelUnits") or []
    size = ext.get("VoxelSize")
    if size and all(str(u).lower() in ("nanometers", "nanometer", "nm") for u in units):
        x, y, z = (float(v) for v in size)
        voxel = (z, y, x)
    return {
        "extents": extents,
        "dtype": dtype,
        "voxel_size_nm": voxel,
        "voxel_size_origin": "DVID instance info (Extended.VoxelSize)" if voxel else "",
        "info": doc,
    }


def _precomputed_geometry(doc: dict[str, Any], scale: int, where: str) -> dict[str, Any]:
    try:
        scales = doc["scales"]
        if int(doc.get("num_channels", 1)) != 1:
            raise RemoteFormatError(f"{where}: {doc['num_channels']} channels; only 1 supported")
        dtype = np.dtype(doc["data_type"])
    except (KeyError, TypeError) as err:
        raise RemoteFormatError(f"{where}: not a neuroglancer precomputed info ({err!r})") from err
    if not 0 <= scale < len(scales):
        raise ConfigError(f"--scale {scale}: {where} has scales 0..{len(scales) - 1}")
    s = scales[scale]
    offset = _xyz_to_zyx(s.get("voxel_offset") or [0, 0, 0], where, "voxel_offset")
    size = _xyz_to_zyx(s.get("size"), where, "size")
    x, y, z = (float(v) for v in s["resolution"])
    return {
        "extents": tuple((o, o + n) for o, n in zip(offset, size, strict=True)),
        "dtype": dtype,
        "voxel_size_nm": (z, y, x),
        "voxel_size_origin": f"precomputed info (scales[{scale}].resolution)",
        "info": doc,
    }


# -- readers --------------------------------------------------------------------------------------


class DvidReader(VolumeReader):
    """Regions (relative to the box) from DVID ``/raw/0_1_2``, as block-aligned sub-boxes."""

    digest_from_store = True  # a second pass over the network is what we avoid

    def __init__(
        self,
        http: HttpTransport,
        node_url: str,
        box: Box,
        dtype: np.dtype[Any],
        options: FlyEMSettings,
    ) -> None:
        self.http = http
        self.node_url = node_url
        self.box = box
        self.shape: tuple[int, int, int] = tuple(b - a for a, b in box)  # type: ignore[assignment]
        self.wire_dtype = np.dtype(dtype)
        self.dtype = self.wire_dtype.newbyteorder("=")
        self.options = options
        self._pool = ThreadPoolExecutor(options.fetch_threads, thread_name_prefix="flyem-dvid")

    def raw_url(self, piece: Box) -> str:
        (z0, z1), (y0, y1), (x0, x1) = piece
        return f"{self.node_url}/raw/0_1_2/{x1 - x0}_{y1 - y0}_{z1 - z0}/{x0}_{y0}_{z0}"

    def _fetch(self, piece: Box) -> np.ndarray:
        url = self.raw_url(piece)
        params = {"throttle": "true"} if self.options.throttle else None
        shape = tuple(b - a for a, b in piece)
        want = math.prod(shape) * self.wire_dtype.itemsize

        def attempt() -> np.ndarray:
            try:
                body = self.http.get_bytes(url, params=params)
            except TransientSourceError as err:  # get_bytes has retried it already
                raise SourceError(str(err)) from err
            if len(body) != want:
                raise TransientSourceError(f"{url}: {len(body)} bytes where {want} were expected")
            return np.frombuffer(body, self.wire_dtype).reshape(shape)

        # get_bytes retries transport faults itself; this outer call retries wrong-sized bodies.
        return retry_call(attempt, self.http.policy, what=f"GET {url}")

    def read(self, region: Region) -> np.ndarray:
        if any(not (0 <= s.start <= s.stop <= n) for s, n in zip(region, self.shape, strict=True)):
            raise ValueError(
                f"region {format_region(region)} outside the box of shape {self.shape}"
            )
        origin = [a for a, _ in self.box]
        absolute: Box = tuple(  # type: ignore[assignment]
            (o + s.start, o + s.stop) for o, s in zip(origin, region, strict=True)
        )
        out = np.empty(tuple(s.stop - s.start for s in region), self.dtype)
        if out.size == 0:
            return out
        pieces = aligned_pieces(absolute, self.options.max_payload_bytes, self.dtype.itemsize)

        def fetch_into(piece: Box) -> None:
            data = self._fetch(piece)
            dst = tuple(
                slice(a - r0, b - r0) for (a, b), (r0, _) in zip(piece, absolute, strict=True)
            )
            out[dst] = data

        if len(pieces) == 1:
            fetch_into(pieces[0])
        else:
            for future in [self._pool.submit(fetch_into, p) for p in pieces]:
                future.result()
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class PrecomputedReader(VolumeReader):
    """Regions (relative to the box) of one precomputed scale, read with tensorstore.

    Timeouts, stall renewal, chunk and region retries and error translation are
    :class:`~emingest.transports.tensorstore.TensorstoreReads` under ``transport``.
    """

    digest_from_store = True

    def __init__(
        self,
        url: str,
        scale: int,
        box: Box,
        dtype: np.dtype[Any],
        options: FlyEMSettings,
    ) -> None:
        self.url = url
        self.scale = scale
        self.box = box
        self.shape: tuple[int, int, int] = tuple(b - a for a, b in box)  # type: ignore[assignment]
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.options = options
        self._reads = TensorstoreReads(options.transport, kvstore="http")

    def _spec(self) -> dict[str, Any]:
        return {
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "http", "base_url": self.url},
            "scale_index": self.scale,
        }

    def read(self, region: Region) -> np.ndarray:
        if any(not (0 <= s.start <= s.stop <= n) for s, n in zip(region, self.shape, strict=True)):
            raise ValueError(
                f"region {format_region(region)} outside the box of shape {self.shape}"
            )
        (z0, _), (y0, _), (x0, _) = self.box
        zs, ys, xs = region
        absolute = [
            slice(o + s.start, o + s.stop) for o, s in zip((z0, y0, x0), region, strict=True)
        ]
        where = f"{self.url} (scale {self.scale}) [{format_region(absolute)}]"
        # the domain is x, y, z, channel in absolute voxels
        data = self._reads.read(
            f"scale{self.scale}",
            self._spec(),
            lambda array: array[
                x0 + xs.start : x0 + xs.stop,
                y0 + ys.start : y0 + ys.stop,
                z0 + zs.start : z0 + zs.stop,
                0,
            ],
            where,
        )
        return np.ascontiguousarray(data.transpose(2, 1, 0), dtype=self.dtype)

    def close(self) -> None:
        self._reads.close()


__all__ = [
    "DEFAULT_CROP",
    "HEMIBRAIN_UUID",
    "DvidReader",
    "FlyEMSettings",
    "FlyEMSource",
    "PrecomputedReader",
    "aligned_pieces",
    "crop_origin",
    "format_box",
    "parse_box",
]
