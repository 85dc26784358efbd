"""OpenOrganelle (Janelia COSEM): Zarr v2 pyramids in the public bucket ``janelia-cosem-datasets``.

``emingest ingest openorganelle jrc_mus-nacc-2`` copies the dataset's EM array (by default
``recon-2/em/fibsem-int16``) with its own pyramid levels, optionally cropped to a box given in
level-0 voxels. Metadata documents (``.zmetadata``, ``.zattrs``, ``.zarray``, listings) are
fetched with plain anonymous S3 GETs; voxels are read with tensorstore's ``zarr``/``s3`` driver
(0.89x of a raw GET in shared/reference/performance.md, against 0.52x for zarr + s3fs). Access is
always anonymous: nothing probes for AWS credentials or instance metadata.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from pydantic import AliasChoices, Field, model_validator

from emingest.config import DatasetSettings, Settings
from emingest.errors import (
    ConfigError,
    EntryNotFoundError,
    RemoteFormatError,
    SourceError,
)
from emingest.fingerprints import metadata_fingerprint
from emingest.omezarr.metadata import Level
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
from emingest.transports.s3 import AnonymousS3
from emingest.transports.settings import TransportSettings, fold_legacy_keys
from emingest.transports.tensorstore import TensorstoreReads
from emingest.transports.urls import relative_below

log = logging.getLogger(__name__)

T = TypeVar("T")
"""A half-open box as ((z0, z1), (y0, y1), (x0, x1))."""

_UNIT_NM = {
    "nanometer": 1.0,
    "nm": 1.0,
    "micrometer": 1000.0,
    "micron": 1000.0,
    "um": 1000.0,
    "µm": 1000.0,
    "angstrom": 0.1,
    "picometer": 0.001,
    "millimeter": 1e6,
}


class OpenOrganelleSettings(SourceSettings):
    """The ``[sources.openorganelle]`` section."""

    bucket: str = Field("janelia-cosem-datasets", description="S3 bucket of the datasets")
    endpoint_url: str | None = Field(
        None, description="S3 endpoint (a mirror, a loopback replica); None: AWS itself"
    )
    aws_region: str = Field("us-east-1", description="The bucket's AWS region")
    default_array: str = Field(
        "recon-2/em/fibsem-int16",
        description="Array group used when --array is not given (relative to <dataset>.zarr/); "
        "when a dataset lacks it, its first '*/em/*' multiscale group is used",
    )
    transport: TransportSettings = Field(
        default_factory=lambda: TransportSettings.model_validate({}),
        description="Timeouts and retries of metadata GETs and chunk reads ([transport], "
        "overridden by [sources.openorganelle.transport])",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_to_transport(cls, section: Any) -> Any:
        # these keys lived here before [transport] held every source's timeouts and retries
        return fold_legacy_keys(
            section,
            {
                "connect_timeout_s": ("connect_timeout_s", float),
                "read_timeout_s": ("read_timeout_s", float),
                "region_timeout_s": ("region_timeout_s", float),
                "retries": ("attempts", lambda n: int(n) + 1),
                "retry_backoff_s": ("backoff_initial_s", float),
                "s3_request_retries": ("chunk_request_retries", int),
                "s3_request_concurrency": ("chunk_request_concurrency", int),
            },
        )


@dataclass(frozen=True)
class SourceLevel:
    """One level of the archive's pyramid, in z, y, x nanometres."""

    path: str
    shape: tuple[int, int, int]
    scale_nm: tuple[float, float, float]
    translation_nm: tuple[float, float, float]


@dataclass(frozen=True)
class ArrayListing:
    """One multiscale image of a dataset, as ``--list`` shows it."""

    path: str
    """Relative to ``<dataset>.zarr/``, the value ``--array`` takes."""
    dtype: str
    levels: tuple[tuple[str, tuple[int, ...]], ...]
    voxel_size_nm: tuple[float, float, float] | None


# -- options --------------------------------------------------------------------------------------


def parse_region(value: str | Sequence[Any] | None) -> Box | None:
    """``"z0:z1,y0:y1,x0:x1"`` (level-0 voxels, half-open; an empty bound means the edge) or
    three (start, stop) pairs / slices. Open ends come back as -1 (resolved against the shape)."""
    return parse_box(value, flag="--region", open_ends=True)


def parse_levels(value: str | Sequence[Any] | None) -> tuple[int, ...] | None:
    """``"0,1,2"``, ``"0-3"``, ``"s0,s2"`` or a sequence of ints; None means every level."""
    if value is None or value == "":
        return None
    items: list[Any] = value.split(",") if isinstance(value, str) else list(value)
    out: set[int] = set()
    try:
        for item in items:
            text = str(item).strip().lower().lstrip("s")
            if "-" in text:
                lo, hi = text.split("-", 1)
                out.update(range(int(lo), int(hi.lstrip("s")) + 1))
            else:
                out.add(int(text))
    except ValueError as err:
        raise ConfigError(f"--levels {value!r}: give level numbers like 0,1,2 or 0-3") from err
    if not out or min(out) < 0:
        raise ConfigError(f"--levels {value!r}: level numbers start at 0")
    return tuple(sorted(out))


def level_box(box: Box, ratio: Sequence[float], shape: Sequence[int]) -> Box:
    """The level-k box covering level-0 ``box``: start floored, stop ceiled, clipped."""
    out = []
    for (a, b), r, n in zip(box, ratio, shape, strict=True):
        lo = min(math.floor(a / r + 1e-9), n)
        hi = min(math.ceil(b / r - 1e-9), n)
        out.append((lo, max(lo, hi)))
    return (out[0], out[1], out[2])


# -- anonymous S3 for metadata -------------------------------------------------------------------


def _json_doc(raw: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise RemoteFormatError(f"{where}: not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise RemoteFormatError(f"{where}: expected a JSON object")
    return doc


# -- the source -----------------------------------------------------------------------------------


class OpenOrganelleOptions(SourceOptions):
    array: str | None = Field(None, description="Array group, e.g. recon-2/em/fibsem-int16")
    source_levels: str | None = Field(
        None,
        # "levels" is the option's name before the rename (TOML files and scripts keep working)
        validation_alias=AliasChoices("source_levels", "levels"),
        description="The archive's levels to copy: 0,2 or 0-3 (default all)",
    )
    region: str | None = Field(None, description="Crop z0:z1,y0:y1,x0:x1 in level-0 voxels")


AWS_S3 = "https://{bucket}.s3.amazonaws.com/"


class OpenOrganelleSource(Source):
    """``emingest ingest openorganelle DATASET...``: one volume per dataset (its EM array, or
    ``array``), the archive's own pyramid levels copied, optionally cropped to ``region``."""

    name: ClassVar[str] = "openorganelle"
    description: ClassVar[str] = (
        "Copy an OpenOrganelle (COSEM) array and its own pyramid from anonymous S3."
    )
    ids_help: ClassVar[str] = "Dataset ids, e.g. jrc_mus-nacc-2"
    settings_model: ClassVar[type[SourceSettings]] = OpenOrganelleSettings
    replica: ClassVar[str] = "emingest.testing.replicas:OpenOrganelleDemoReplica"
    settings_flags: ClassVar[tuple[str, ...]] = ("endpoint_url", "bucket")
    options_model: ClassVar[type[SourceOptions]] = OpenOrganelleOptions

    @classmethod
    def default_datasets(cls) -> list[DatasetSettings]:
        # s0 is 7.4 GB of int16: by default copy s1..s8 (s1 = 0.9 GB at 5.92 x 8 x 8 nm).
        return [
            DatasetSettings(
                name="openorganelle-jrc_mus-nacc-2",
                source="openorganelle",
                ids=["jrc_mus-nacc-2"],
                options={"source_levels": "1-8"},
            )
        ]

    def preflight_urls(self) -> list[str]:
        return [self.options.endpoint_url or AWS_S3.format(bucket=self.options.bucket)]

    def list_contents(self, spec: Sequence[str], **options: Any) -> list[str]:
        """Every multiscale array of each dataset, with its levels' shapes."""
        lines = []
        for dataset in spec:
            for a in self.list_arrays(dataset):
                shapes = ", ".join(f"{p}{list(sh)}" for p, sh in a.levels)
                lines.append(
                    f"{dataset}/{a.path}  {a.dtype}  voxel {a.voxel_size_nm} nm  levels: {shapes}"
                )
        return lines

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options: OpenOrganelleSettings = source_settings(  # type: ignore[assignment]
            settings, self.name, OpenOrganelleSettings
        )
        self.s3 = AnonymousS3(
            self.options.bucket,
            endpoint_url=self.options.endpoint_url,
            region=self.options.aws_region,
            connect_timeout_s=self.options.transport.connect_timeout_s,
            read_timeout_s=self.options.transport.read_timeout_s,
            policy=self.options.transport.retry_policy(),
        )
        self._lock = threading.Lock()
        self._consolidated: dict[str, dict[str, Any] | None] = {}
        self._described: dict[VolumeRef, tuple[VolumeInfo, list[SourceLevel], list[Box]]] = {}

    # -- keys ------------------------------------------------------------------------------

    @staticmethod
    def zarr_root(dataset: str) -> str:
        return f"{dataset}/{dataset}.zarr"

    def _array_path(self, dataset: str, array: str) -> str:
        path = array.strip().strip("/")
        prefix = f"{dataset}.zarr/"
        if path.startswith(f"{dataset}/{prefix}"):
            path = path[len(dataset) + 1 :]
        if path.startswith(prefix):
            path = path[len(prefix) :]
        if not path or ".." in path.split("/"):
            raise ConfigError(f"--array {array!r}: give a path like recon-2/em/fibsem-int16")
        return path

    def _consolidated_docs(self, dataset: str) -> dict[str, Any] | None:
        """The ``.zmetadata`` documents of a dataset (path -> document), or None without one."""
        with self._lock:
            if dataset in self._consolidated:
                return self._consolidated[dataset]
        key = f"{self.zarr_root(dataset)}/.zmetadata"
        raw = self.s3.get(key)
        docs = None
        if raw is not None:
            meta = _json_doc(raw, self.s3.s3_url(key)).get("metadata")
            docs = meta if isinstance(meta, dict) else None
        with self._lock:
            self._consolidated[dataset] = docs
        return docs

    def _doc(self, dataset: str, rel: str) -> dict[str, Any] | None:
        """A metadata document under ``<dataset>.zarr/``: from ``.zmetadata`` when it has it,
        else one GET. None when it does not exist."""
        docs = self._consolidated_docs(dataset)
        if docs is not None and isinstance(docs.get(rel), dict):
            return docs[rel]
        key = f"{self.zarr_root(dataset)}/{rel}"
        raw = self.s3.get(key)
        return None if raw is None else _json_doc(raw, self.s3.s3_url(key))

    def _require_dataset(self, dataset: str) -> None:
        if self._doc(dataset, ".zgroup") is None:
            key = f"{self.zarr_root(dataset)}/.zgroup"
            raise EntryNotFoundError(
                f"OpenOrganelle dataset {dataset!r} not found: {self.s3.s3_url(key)} does not "
                f"exist ({self.s3.url(key)}). Older datasets are N5, which is not supported."
            )

    # -- discover ---------------------------------------------------------------------------

    def discover(self, spec: Sequence[str], **options: Any) -> list[VolumeRef]:
        """One volume per dataset name. Options: ``array`` (path under ``<dataset>.zarr/``),
        ``source_levels`` ("0,1" / "0-3" / ints; default all; ``levels`` before the rename),
        ``region`` ("z0:z1,y0:y1,x0:x1" in level-0 voxels; default the whole array)."""
        options = dict(options)
        if "levels" in options:  # the option's name before the rename
            options["source_levels"] = options.pop("levels")
        unknown = set(options) - {"array", "source_levels", "region"}
        if unknown:
            raise ConfigError(f"openorganelle: unknown options {sorted(unknown)}")
        box = parse_region(options.get("region"))
        levels = parse_levels(options.get("source_levels"))
        refs = []
        for dataset in spec:
            dataset = dataset.strip().strip("/")
            if not dataset or "/" in dataset:
                raise ConfigError(f"{dataset!r} is not an OpenOrganelle dataset name")
            self._require_dataset(dataset)
            array = options.get("array")
            path = self._array_path(dataset, array) if array else self._default_array(dataset)
            name = path.replace("/", "_")
            if levels is not None:
                name += "_s" + "-".join(map(str, levels))
            if box is not None:
                name += "_" + "_".join(
                    f"{axis}{a}-{'end' if b < 0 else b}"
                    for axis, (a, b) in zip("zyx", box, strict=True)
                )
            refs.append(
                VolumeRef(
                    source=self.name,
                    source_id=dataset,
                    name=name,
                    locator=self.s3.s3_url(f"{self.zarr_root(dataset)}/{path}"),
                    extra=(("array", path), ("levels", levels), ("region", box)),
                )
            )
        return refs

    def _default_array(self, dataset: str) -> str:
        path = self._array_path(dataset, self.options.default_array)
        if self._doc(dataset, f"{path}/.zattrs") is not None:
            return path
        found = [a.path for a in self.list_arrays(dataset)]
        em = [p for p in found if "/em/" in f"/{p}/"]
        if em:
            log.info("%s: no %s; using %s", dataset, path, em[0])
            return em[0]
        raise EntryNotFoundError(
            f"{dataset}: no EM array ({self.s3.s3_url(self.zarr_root(dataset))}/{path} does not "
            f"exist); arrays found: {', '.join(found) or 'none'}. Pass --array."
        )

    # -- list ------------------------------------------------------------------------------

    def list_arrays(self, dataset: str) -> list[ArrayListing]:
        """Every multiscale image (a group whose ``.zattrs`` has ``multiscales``) of a dataset,
        from ``.zmetadata`` when the store has it, else by walking the ``.zgroup`` tree."""
        self._require_dataset(dataset)
        docs = self._consolidated_docs(dataset)
        groups: list[str] = []
        if docs is not None:
            for rel, doc in docs.items():
                if rel.endswith(".zattrs") and isinstance(doc, dict) and "multiscales" in doc:
                    groups.append(rel[: -len(".zattrs")].rstrip("/"))
        else:
            root = self.zarr_root(dataset) + "/"
            todo, depth = [""], 0
            while todo and depth < 8:
                next_level = []
                for rel in todo:
                    folders, names = self.s3.list_dir(root + rel)
                    if ".zarray" in names:
                        continue
                    attrs = self._doc(dataset, f"{rel}.zattrs") if ".zattrs" in names else None
                    if attrs is not None and "multiscales" in attrs:
                        groups.append(rel.rstrip("/"))
                        continue
                    next_level += [f"{rel}{f}/" for f in folders]
                todo, depth = next_level, depth + 1
        out = []
        for path in sorted(p for p in groups if p):
            try:
                levels, dtype, _ = self._read_pyramid(dataset, path, None)
            except SourceError as err:
                log.warning("%s/%s: skipped: %s", dataset, path, err)
                continue
            out.append(
                ArrayListing(
                    path=path,
                    dtype=dtype.name,
                    levels=tuple((lv.path, lv.shape) for lv in levels.values()),
                    voxel_size_nm=levels[0].scale_nm,
                )
            )
        return out

    # -- describe ---------------------------------------------------------------------------

    def _read_pyramid(
        self, dataset: str, path: str, selected: tuple[int, ...] | None
    ) -> tuple[dict[int, SourceLevel], np.dtype[Any], dict[str, Any]]:
        """Source level number -> level (all when ``selected`` is None; s0 always, as the crop
        is given in its voxels), the native dtype, and the documents read."""
        group_url = f"{self.s3.s3_url(self.zarr_root(dataset))}/{path}"
        attrs = self._doc(dataset, f"{path}/.zattrs")
        if attrs is None or "multiscales" not in attrs:
            if self._doc(dataset, f"{path}/.zarray") is not None:
                raise RemoteFormatError(
                    f"{group_url} is a single Zarr array, not a multiscale group: pass its "
                    "parent group as --array and pick levels with --levels"
                )
            http = self.s3.url(f"{self.zarr_root(dataset)}/{path}/.zattrs")
            raise EntryNotFoundError(
                f"{dataset}: no multiscale array at {group_url} ({http}); "
                f"see 'emingest ingest openorganelle {dataset} --list'"
            )
        scales = parse_multiscales(attrs, group_url)
        for lpath, _, _ in scales:  # level paths become S3 keys: they stay below the group
            relative_below(group_url, lpath)
        if selected is not None and selected[-1] >= len(scales):
            raise ConfigError(
                f"--levels {','.join(map(str, selected))}: {group_url} has levels 0-"
                f"{len(scales) - 1} ({', '.join(p for p, _, _ in scales)})"
            )
        wanted = sorted({0, *(selected or range(len(scales)))})
        zarrays: dict[str, Any] = {}
        levels: dict[int, SourceLevel] = {}
        dtype: np.dtype[Any] | None = None
        for k in wanted:
            lpath, scale, shift = scales[k]
            meta = self._doc(dataset, f"{path}/{lpath}/.zarray")
            if meta is None:
                raise EntryNotFoundError(
                    f"{group_url}/{lpath}/.zarray does not exist (listed in .zattrs multiscales)"
                )
            try:
                shape = tuple(int(n) for n in meta["shape"])
                level_dtype = np.dtype(meta["dtype"])
            except (KeyError, TypeError, ValueError) as err:
                raise RemoteFormatError(f"{group_url}/{lpath}/.zarray: {err!r}") from err
            if len(shape) != 3:
                raise RemoteFormatError(f"{group_url}/{lpath}: {len(shape)}-D, expected z, y, x")
            if dtype is not None and level_dtype != dtype:
                raise RemoteFormatError(f"{group_url}: levels have dtypes {dtype}, {level_dtype}")
            dtype = level_dtype
            zarrays[lpath] = meta
            levels[k] = SourceLevel(lpath, (shape[0], shape[1], shape[2]), scale, shift)
        assert dtype is not None
        return levels, dtype.newbyteorder("="), {"attrs": attrs, "zarrays": zarrays}

    def _describe(self, ref: VolumeRef) -> tuple[VolumeInfo, list[SourceLevel], list[Box]]:
        with self._lock:
            if ref in self._described:
                return self._described[ref]
        dataset, path = ref.source_id, ref.get("array")
        selected: tuple[int, ...] | None = ref.get("levels")
        box: Box | None = ref.get("region")
        all_levels, dtype, docs = self._read_pyramid(dataset, path, selected)
        s0 = all_levels[0]
        group_url = f"{self.s3.s3_url(self.zarr_root(dataset))}/{path}"
        if box is not None:
            box = tuple(  # type: ignore[assignment]
                (a, n if b < 0 else b) for (a, b), n in zip(box, s0.shape, strict=True)
            )
            assert box is not None
            if any(b > n or a >= b for (a, b), n in zip(box, s0.shape, strict=True)):
                raise ConfigError(
                    f"--region {format_box(box)} is outside {group_url}/{s0.path}, whose shape "
                    f"is {s0.shape} (z, y, x level-0 voxels); nothing was downloaded"
                )
        full = box or ((0, s0.shape[0]), (0, s0.shape[1]), (0, s0.shape[2]))
        chosen = [lv for i, lv in sorted(all_levels.items()) if selected is None or i in selected]
        levels: list[Level] = []
        boxes: list[Box] = []
        kept: list[SourceLevel] = []
        for lv in chosen:
            ratio = [_ratio(s, s0s) for s, s0s in zip(lv.scale_nm, s0.scale_nm, strict=True)]
            lbox = level_box(full, ratio, lv.shape)
            shape = tuple(b - a for a, b in lbox)
            if min(shape) < 1:
                if selected is not None:
                    raise ConfigError(
                        f"--region {format_box(full)} is empty at level {lv.path} of {group_url}"
                    )
                log.info("%s: level %s dropped: the region is empty there", ref.name, lv.path)
                continue
            translation = tuple(
                t + a * s for t, (a, _), s in zip(lv.translation_nm, lbox, lv.scale_nm, strict=True)
            )
            levels.append(
                Level(
                    path=f"s{len(levels)}",
                    shape=shape,  # type: ignore[arg-type]
                    voxel_size_nm=lv.scale_nm,
                    translation_nm=translation,  # type: ignore[arg-type]
                )
            )
            boxes.append(lbox)
            kept.append(lv)
        info = VolumeInfo(
            ref=ref,
            shape=levels[0].shape,
            dtype=dtype,
            voxel_size_nm=levels[0].voxel_size_nm,
            description=f"OpenOrganelle {dataset} {path}"
            + (f" crop {format_box(full)}" if box else ""),
            download_url=group_url,
            voxel_size_origin="OME-NGFF 0.4 multiscales in the array group's .zattrs",
            additional_metadata={
                "bucket": self.options.bucket,
                "endpoint_url": self.options.endpoint_url,
                "key": f"{self.zarr_root(dataset)}/{path}",
                "url": self.s3.url(f"{self.zarr_root(dataset)}/{path}"),
                "dataset": dataset,
                "array": path,
                "region": format_box(full) if box else None,
                "source_levels": [
                    {"path": lv.path, "region": format_box(b), "source_shape": list(lv.shape)}
                    for lv, b in zip(kept, boxes, strict=True)
                ],
                "zattrs": docs["attrs"],
                "zarrays": docs["zarrays"],
            },
            levels=levels,
            fingerprint=metadata_fingerprint(
                group_url, {"zattrs": docs["attrs"], "zarrays": docs["zarrays"]}
            ),
        )
        with self._lock:
            self._described[ref] = (info, kept, boxes)
        return info, kept, boxes

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        """Shape, dtype, voxel size and the levels to copy, from metadata only: a missing array
        or a box outside the array fails here, before any voxel is downloaded."""
        return self._describe(ref)[0]

    def open(self, ref: VolumeRef) -> OpenOrganelleReader:
        info, levels, boxes = self._describe(ref)
        root = f"{self.zarr_root(ref.source_id)}/{ref.get('array')}"
        return OpenOrganelleReader(
            self.options,
            [f"{root}/{lv.path}/" for lv in levels],
            boxes,
            info.dtype,
            label=f"{ref.source_id}/{ref.get('array')}",
        )


def _ratio(scale: float, scale0: float) -> float:
    r = scale / scale0
    return float(round(r)) if abs(r - round(r)) < 1e-6 * max(1.0, r) else r


def parse_multiscales(
    attrs: dict[str, Any], where: str
) -> list[tuple[str, tuple[float, float, float], tuple[float, float, float]]]:
    """(path, scale nm, translation nm) per dataset of an OME-NGFF 0.4 ``multiscales[0]``,
    in z, y, x order, the multiscale-wide transform applied after each dataset's own."""
    try:
        ms = attrs["multiscales"][0]
        axes = ms.get("axes") or [{"name": a, "unit": "nanometer"} for a in "zyx"]
        names = [a["name"] if isinstance(a, dict) else a for a in axes]
        if names != ["z", "y", "x"]:
            raise RemoteFormatError(f"{where}: axes {names}; only z, y, x is supported")
        units = [a.get("unit") if isinstance(a, dict) else None for a in axes]
        factor = []
        for unit in units:
            if unit is not None and unit.lower() not in _UNIT_NM:
                raise RemoteFormatError(f"{where}: unknown axis unit {unit!r}")
            factor.append(_UNIT_NM[unit.lower()] if unit else 1.0)
        g_scale, g_shift = _transforms(ms.get("coordinateTransformations"), where)
        out = []
        for ds in ms["datasets"]:
            scale, shift = _transforms(ds.get("coordinateTransformations"), where)
            out.append(
                (
                    str(ds["path"]),
                    tuple(s * gs * f for s, gs, f in zip(scale, g_scale, factor, strict=True)),
                    tuple(
                        (t * gs + gt) * f
                        for t, gs, gt, f in zip(shift, g_scale, g_shift, factor, strict=True)
                    ),
                )
            )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise RemoteFormatError(f"{where}/.zattrs: malformed multiscales: {err!r}") from err
    if not out:
        raise RemoteFormatError(f"{where}/.zattrs: multiscales lists no datasets")
    return out  # type: ignore[return-value]


def _transforms(items: Any, where: str) -> tuple[list[float], list[float]]:
    scale, shift = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    for t in items or []:
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation":
            shift = [float(v) for v in t["translation"]]
        else:
            raise RemoteFormatError(f"{where}: unsupported coordinate transform {t!r}")
    if len(scale) != 3 or len(shift) != 3:
        raise RemoteFormatError(f"{where}: transforms must have 3 values, got {scale}, {shift}")
    return scale, shift


# -- the reader -----------------------------------------------------------------------------------


class OpenOrganelleReader(VolumeReader):
    """Regions of the copied levels, read with tensorstore (zarr driver, s3 kvstore, anonymous).

    Regions are relative to the crop of each level. Timeouts, stall renewal, chunk and region
    retries and error translation are :class:`~emingest.transports.tensorstore.TensorstoreReads`
    under ``transport`` (``[transport]``), as for every chunked archive.
    """

    digest_from_store = True

    def __init__(
        self,
        options: OpenOrganelleSettings,
        keys: Sequence[str],
        boxes: Sequence[Box],
        dtype: np.dtype[Any],
        *,
        label: str,
    ) -> None:
        self.options = options
        self.keys = list(keys)
        self.boxes = list(boxes)
        self.shapes = [tuple(b - a for a, b in box) for box in boxes]
        self.shape: tuple[int, int, int] = self.shapes[0]  # type: ignore[assignment]
        self.dtype = np.dtype(dtype)
        self.label = label
        self._reads = TensorstoreReads(options.transport, kvstore="s3")

    def _spec(self, key: str) -> dict[str, Any]:
        o = self.options
        kvstore: dict[str, Any] = {
            "driver": "s3",
            "bucket": o.bucket,
            "path": key,
            "aws_region": o.aws_region,
            "aws_credentials": {"type": "anonymous"},
        }
        if o.endpoint_url:
            kvstore["endpoint"] = o.endpoint_url.rstrip("/")
        return {"driver": "zarr", "kvstore": kvstore}

    def _where(self, level: int, region: Sequence[slice] | None = None) -> str:
        url = f"s3://{self.options.bucket}/{self.keys[level].rstrip('/')}"
        return url if region is None else f"{url} [{format_region(region)}]"

    def read(self, region: Region) -> np.ndarray:
        return self.read_level(0, region)

    def read_level(self, level: int, region: Region) -> np.ndarray:
        """Voxels of ``region`` (relative to the crop at ``level``), native byte order."""
        shape = self.shapes[level]
        if any(not (0 <= s.start <= s.stop <= n) for s, n in zip(region, shape, strict=True)):
            raise ValueError(
                f"region {format_region(region)} outside level {level} of shape {shape}"
            )
        box = self.boxes[level]
        absolute = tuple(
            slice(a + s.start, a + s.stop) for s, (a, _) in zip(region, box, strict=True)
        )
        key = self.keys[level]
        data = self._reads.read(
            key, self._spec(key), lambda array: array[absolute], self._where(level, absolute)
        )
        return np.ascontiguousarray(data, dtype=self.dtype)

    def close(self) -> None:
        self._reads.close()


__all__ = [
    "AnonymousS3",
    "ArrayListing",
    "OpenOrganelleReader",
    "OpenOrganelleSettings",
    "OpenOrganelleSource",
    "SourceLevel",
    "level_box",
    "parse_levels",
    "parse_multiscales",
    "parse_region",
]
