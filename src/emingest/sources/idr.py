"""IDR, the Image Data Resource (``emingest ingest idr IMAGE_ID...`` / ``--dataset ID``).

Metadata come from OMERO.web's JSON API (``/api/v0/m/images/{id}/``) and the webgateway's
``imgData``; both are kept whole under ``additional_metadata``. Sizes there are in µm and the
dimension order XYZCT: converted here, once, to nm and (z, y, x). Raw pixels come from the
original file: ``/webgateway/original_file_paths/{id}/`` gives its managed-repository path and
its import-time (client) path; IDR imported in place, so the client path lies below
``/uod/idr/filesets/<rel>``, which maps onto EBI's public tree (``files_url`` + ``<rel>``,
over FTP or HTTPS); the file (a big-endian ImageJ TIFF for idr0086) is downloaded into the
cache and read memory-mapped. The rendered JPEG endpoints are never used as data.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from emingest.config import DatasetSettings, Settings
from emingest.errors import (
    ConfigError,
    EntryNotFoundError,
    RemoteFormatError,
    UnsupportedFormatError,
)
from emingest.fingerprints import fetch_current, remote_file_fingerprint
from emingest.formats.limits import DecodeLimits
from emingest.formats.tiff import TiffVolume
from emingest.sources.base import (
    Source,
    SourceOptions,
    SourceSettings,
    VolumeInfo,
    VolumeRef,
    source_settings,
)
from emingest.transports import Downloader, TransportSettings, default_cache_dir, safe_relative_path
from emingest.transports.urls import join_below

log = logging.getLogger(__name__)

NM_PER_UNIT = {
    "ANGSTROM": 0.1,
    "PICOMETER": 1e-3,
    "NANOMETER": 1.0,
    "MICROMETER": 1e3,
    "MILLIMETER": 1e6,
    "CENTIMETER": 1e7,
    "METER": 1e9,
}
OMERO_DTYPES = {
    "int8": "i1",
    "uint8": "u1",
    "int16": "i2",
    "uint16": "u2",
    "int32": "i4",
    "uint32": "u4",
    "float": "f4",
    "double": "f8",
}
TIFF_SUFFIXES = (".tif", ".tiff")


class IdrSettings(SourceSettings):
    """``[sources.idr]``."""

    api_url: str = Field(
        "https://idr.openmicroscopy.org", description="OMERO.web base; the API is at /api/v0/"
    )
    files_url: str = Field(
        "ftp://ftp.ebi.ac.uk/pub/databases/IDR",
        description="Root of the public file tree: ftp:// or https:// (the same tree)",
    )
    repository_prefix: str = Field(
        "/uod/idr/filesets/", description="Repository path prefix that maps onto files_url"
    )
    page_size: int = Field(500, ge=1, le=500, description="Images per API page (max 500)")
    transport: TransportSettings = Field(
        default_factory=lambda: TransportSettings.model_validate({})
    )


def _image_id(value: str | int) -> int:
    try:
        image_id = int(str(value).strip())
    except ValueError:
        raise EntryNotFoundError(
            f"{value!r} is not an IDR image id (ids are integers, e.g. 9846137)"
        ) from None
    if image_id <= 0:
        raise EntryNotFoundError(f"{value!r} is not an IDR image id")
    return image_id


def _stem(name: str) -> str:
    for suffix in (".ome.tiff", ".ome.tif", *TIFF_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _length_nm(length: Any) -> float | None:
    """An omero-marshal ``LengthI`` (``{"Unit": "MICROMETER", "Value": 0.02}``) in nm."""
    if not isinstance(length, dict) or length.get("Value") is None:
        return None
    factor = NM_PER_UNIT.get(str(length.get("Unit", "MICROMETER")).upper())
    if factor is None:
        return None
    return round(float(length["Value"]) * factor, 9)


class IdrOptions(SourceOptions):
    dataset: str | None = Field(None, description="Every image of this dataset id")


class IdrSource(Source):
    """Images of IDR, by id or by dataset; pixels from the original files."""

    name: ClassVar[str] = "idr"
    description: ClassVar[str] = (
        "Ingest IDR images from their original files (never the rendered JPEGs)."
    )
    ids_help: ClassVar[str] = "IDR image ids (or --dataset ID)"
    settings_model: ClassVar[type[SourceSettings]] = IdrSettings
    replica: ClassVar[str] = "emingest.testing.replicas:IdrDemoReplica"
    settings_flags: ClassVar[tuple[str, ...]] = ("api_url", "files_url")
    options_model: ClassVar[type[SourceOptions]] = IdrOptions

    @classmethod
    def default_datasets(cls) -> list[DatasetSettings]:
        return [DatasetSettings(name="idr-9846137", source="idr", ids=["9846137"])]

    def check_request(self, spec: Sequence[str], options: Mapping[str, Any]) -> None:
        if not spec and options.get("dataset") is None:
            raise ConfigError("idr: give IMAGE_ID... or --dataset ID")
        for item in spec:
            try:
                _image_id(item)
            except EntryNotFoundError as err:
                raise ConfigError(str(err)) from None

    def preflight_urls(self) -> list[str]:
        return [f"{self.options.api_url.rstrip('/')}/api/v0/"]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options: IdrSettings = source_settings(settings, self.name, IdrSettings)  # type: ignore[assignment]
        transport = self.options.transport
        self.downloader = Downloader(
            transport, default_cache_dir(settings.storage.local_root, self.name, transport)
        )
        self.http = self.downloader.http
        self._described: dict[VolumeRef, VolumeInfo] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.downloader.close()

    # -- URLs ----------------------------------------------------------------------------------

    @property
    def _api(self) -> str:
        return self.options.api_url.rstrip("/") + "/api/v0/m"

    def image_url(self, image_id: int) -> str:
        return f"{self._api}/images/{image_id}/"

    def _get(self, url: str, what: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return self.http.get_json(url, params=params)
        except EntryNotFoundError as err:
            raise EntryNotFoundError(f"IDR {what} not found: {url} ({err})") from err

    # -- discover ------------------------------------------------------------------------------

    def discover(
        self,
        spec: Sequence[str],
        *,
        dataset: str | int | Iterable[str | int] | None = None,
        **options: Any,
    ) -> list[VolumeRef]:
        """Refs of the image ids in ``spec`` and of every image of ``dataset`` (paged)."""
        refs: list[VolumeRef] = []
        for item in spec:
            image_id = _image_id(item)
            data = self._get(self.image_url(image_id), f"image {image_id}").get("data", {})
            refs.append(self._ref(image_id, data))
        if dataset is not None:
            datasets = [dataset] if isinstance(dataset, str | int) else list(dataset)
            for ds in datasets:
                refs.extend(self.dataset_images(ds))
        unique: dict[str, VolumeRef] = {}
        for r in refs:
            unique.setdefault(r.source_id, r)
        return list(unique.values())

    def dataset_images(self, dataset: str | int) -> list[VolumeRef]:
        """Every image of a dataset, page by page (``meta.totalCount``; 500 per page at most)."""
        try:
            did = int(str(dataset).strip())
        except ValueError:
            raise EntryNotFoundError(f"{dataset!r} is not an IDR dataset id") from None
        self._get(f"{self._api}/datasets/{did}/", f"dataset {did}")
        url = f"{self._api}/datasets/{did}/images/"
        refs: list[VolumeRef] = []
        offset = 0
        while True:
            page = self._get(
                url, f"dataset {did}", {"offset": offset, "limit": self.options.page_size}
            )
            items = page.get("data")
            meta = page.get("meta") or {}
            if not isinstance(items, list):
                raise RemoteFormatError(f"{url}: no 'data' list in the answer")
            refs.extend(self._ref(int(item["@id"]), item, dataset=did) for item in items)
            offset += len(items)
            total = meta.get("totalCount")
            if not items or (isinstance(total, int) and offset >= total):
                break
        log.info("IDR dataset %s: %d images", did, len(refs))
        return refs

    def _ref(self, image_id: int, data: dict[str, Any], dataset: int | None = None) -> VolumeRef:
        name = _stem(str(data.get("Name") or f"image_{image_id}"))
        extra = (("dataset", dataset),) if dataset is not None else ()
        return VolumeRef(
            source=self.name,
            source_id=str(image_id),
            name=name,
            locator=str(image_id),
            extra=extra,
        )

    # -- describe ------------------------------------------------------------------------------

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        """Three small JSON requests: the image, ``imgData`` and the original file's path."""
        image_id = _image_id(ref.locator or ref.source_id)
        base = self.options.api_url.rstrip("/")
        image = self._get(self.image_url(image_id), f"image {image_id}")
        img_data = self._get(f"{base}/webgateway/imgData/{image_id}/", f"image {image_id}")
        paths = self._get(f"{base}/webgateway/original_file_paths/{image_id}/", f"image {image_id}")
        data = image.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("Pixels"), dict):
            raise RemoteFormatError(f"{self.image_url(image_id)}: no Pixels in the image")
        pixels = data["Pixels"]
        shape, dtype = self._shape_dtype(image_id, pixels)
        voxel = self._voxel_nm(pixels, img_data)
        rel = self._file_rel_path(image_id, data, paths)
        url = self._file_url(rel)
        # One HEAD (or FTP SIZE): the original's size and validators, so a re-run sees a
        # changed file (emingest.fingerprints).
        fingerprint = {"files": [remote_file_fingerprint(self.downloader, url)]}
        info = VolumeInfo(
            ref=ref,
            shape=shape,
            dtype=dtype,
            voxel_size_nm=voxel,
            description=f"IDR image {image_id}: {data.get('Name', '')}",
            download_url=url,
            voxel_size_origin="IDR JSON API Pixels.PhysicalSize* (µm -> nm)" if voxel else "",
            additional_metadata={
                "image": image,
                "imgData": img_data,
                "original_file_paths": paths,
                "original_file_url": url,
                "original_file_rel_path": rel,
                "web_page": f"{base}/webclient/img_detail/{image_id}/",
            },
            raw_paths=[self.downloader.path_for(url, rel)],
            fingerprint=fingerprint,
        )
        with self._lock:
            self._described[ref] = info
        return info

    @staticmethod
    def _shape_dtype(
        image_id: int, pixels: dict[str, Any]
    ) -> tuple[tuple[int, int, int], np.dtype[Any]]:
        try:
            sizes = {k: int(pixels[f"Size{k}"]) for k in "XYZCT"}
        except (KeyError, TypeError, ValueError) as err:
            raise RemoteFormatError(f"IDR image {image_id}: Pixels without Size{err}") from err
        if sizes["C"] != 1 or sizes["T"] != 1:
            raise UnsupportedFormatError(
                f"IDR image {image_id} has SizeC={sizes['C']}, SizeT={sizes['T']}: only "
                "single-channel, single-timepoint z-stacks are supported"
            )
        ptype = (pixels.get("Type") or {}).get("value")
        if ptype not in OMERO_DTYPES:
            raise UnsupportedFormatError(f"IDR image {image_id}: pixel type {ptype!r}")
        # OMERO's XYZCT: X varies fastest, so the numpy order is (z, y, x)
        return (sizes["Z"], sizes["Y"], sizes["X"]), np.dtype(OMERO_DTYPES[ptype])

    @staticmethod
    def _voxel_nm(pixels: dict[str, Any], img_data: Any) -> tuple[float, float, float] | None:
        z, y, x = (_length_nm(pixels.get(f"PhysicalSize{a}")) for a in "ZYX")
        if (x is None or y is None) and isinstance(img_data, dict):
            ps = img_data.get("pixel_size") or {}  # µm in imgData
            if ps.get("x") and ps.get("y"):
                x, y = round(float(ps["x"]) * 1e3, 9), round(float(ps["y"]) * 1e3, 9)
                z = round(float(ps["z"]) * 1e3, 9) if ps.get("z") else z
        if x is None or y is None:
            return None
        if z is None:
            z = x  # a single plane, or no z step recorded: isotropic is the usual guess
        return (z, y, x)

    def _file_rel_path(self, image_id: int, data: dict[str, Any], paths: Any) -> str:
        """The original file below the repository prefix.

        ``original_file_paths`` gives ``repo`` (the managed repository's path, OMERO's
        ``<user>_<id>/<yyyy-mm>/<dd>/<hh-mm-ss.sss>/<name>``) and ``client`` (the path at
        import, usually without its leading slash). IDR imported in place, so it is usually a
        *client* path that lies below ``/uod/idr/filesets/``: every candidate of both lists
        is considered, and among those that map, the one named like the image wins."""
        candidates: list[str] = []
        if isinstance(paths, dict):
            for key in ("repo", "client"):
                listed = paths.get(key) or []
                if isinstance(listed, list):
                    candidates += ["/" + str(p).lstrip("/") for p in listed if p]
        if not candidates:
            raise RemoteFormatError(f"IDR image {image_id}: original_file_paths lists no file")
        prefix = "/" + self.options.repository_prefix.strip("/") + "/"
        mapped = [p for p in dict.fromkeys(candidates) if p.startswith(prefix)]
        if not mapped:
            shown = ", ".join(repr(p) for p in candidates[:4])
            raise RemoteFormatError(
                f"IDR image {image_id}: no original file path is below {prefix!r} (repo and "
                f"client paths: {shown}); set sources.idr.repository_prefix to the folder that "
                "maps onto sources.idr.files_url"
            )
        name = str(data.get("Name") or "")
        chosen = next((p for p in mapped if p.rsplit("/", 1)[-1] == name), None)
        if chosen is None:
            tiffs = [p for p in mapped if p.lower().endswith(TIFF_SUFFIXES)]
            chosen = tiffs[0] if tiffs else mapped[0]
        rel = chosen[len(prefix) :]
        safe_relative_path(rel, where=f"IDR image {image_id} original_file_paths")
        if not rel.lower().endswith(TIFF_SUFFIXES):
            raise UnsupportedFormatError(
                f"IDR image {image_id}: original file {rel!r} is not a TIFF; only TIFF "
                "originals are read"
            )
        return rel

    def _file_url(self, rel: str) -> str:
        # rel comes from the archive's original_file_paths: it must stay below files_url
        return join_below(self.options.files_url, rel)

    # -- open ----------------------------------------------------------------------------------

    def open(self, ref: VolumeRef) -> TiffVolume:
        """Download the original (cached, resumable, verified) and read it memory-mapped."""
        with self._lock:
            info = self._described.get(ref)
        if info is None:
            info = self.describe(ref)
        rel = info.additional_metadata["original_file_url"][
            len(self.options.files_url.rstrip("/")) + 1 :
        ]
        (remote,) = info.fingerprint["files"]
        f = fetch_current(self.downloader, info.download_url, urllib.parse.unquote(rel), remote)
        # The pipeline reads files/raw_paths from the VolumeInfo describe returned, after open.
        info.files = [f.as_file_digest()]
        info.raw_paths = [f.path]
        return TiffVolume(f.path, limits=DecodeLimits.from_settings(self.settings.limits))
