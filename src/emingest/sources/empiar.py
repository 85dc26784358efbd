"""EMPIAR: entries from the EBI API, files from ``world_availability`` over HTTPS or FTP.

``emingest ingest empiar 11759`` turns each imageset's directory into volumes: a run of
numbered 2-D slices of one acquisition (DM3/DM4/TIFF) becomes one z-stack, every 3-D file (MRC
volumes, tilt series) its own volume. Units are converted here, once: the API's
``pixel_width``/``pixel_height`` are Ångström, DM calibrations µm, MRC headers Å; the SBF-SEM
slice thickness (z) lives only in the DM vendor tags (or the ``z_spacing_nm`` setting).

Listings come from the autoindex page (HTTPS) or the FTP listing, whichever ``files_url``
names, the other (``fallback_files_url``) when the first fails. EBI's load-balanced autoindex
sometimes forgets names, so the imageset's ``num_images_or_tilt_series`` is authoritative: a
shortfall is looked up in the other listing, then filled by probing the missing numbers of the
file-name series; what still lacks is recorded, never ignored (archives.md §2.4).

Bytes move through :mod:`emingest.transports` (``transport`` sub-section: timeouts, stalls,
retries, per-host connections); this module keeps only EMPIAR's knowledge (addresses, the
autoindex, the entry layout). A stack's reader starts the slice downloads (in z order,
``transport.per_host_connections`` at a time) when it is opened and serves each z-range as soon
as its slices are on disk, reading row bands straight from the files: memory follows the tile
asked for, not the entry.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
from natsort import natsorted
from pydantic import Field

from emingest.config import DatasetSettings, Settings
from emingest.errors import (
    ConfigError,
    ConversionError,
    EntryNotFoundError,
    LocalStorageError,
    RemoteFormatError,
    SourceError,
)
from emingest.fingerprints import fetch_current
from emingest.formats.base import FileVolume, check_region
from emingest.formats.dm3 import DM_SUFFIXES
from emingest.formats.mrc import MRC_SUFFIXES
from emingest.formats.slices import SliceFile, open_slice, open_volume_file
from emingest.readers import VolumeReader
from emingest.regions import Region
from emingest.sources.base import (
    Source,
    SourceOptions,
    SourceSettings,
    VolumeInfo,
    VolumeRef,
    source_settings,
)
from emingest.transports import (
    DownloadedFile,
    Downloader,
    TransportSettings,
    default_cache_dir,
    local_path,
    safe_name,
)
from emingest.transports.cache import done_marker
from emingest.transports.listing import is_ftp, list_dir, remote_size
from emingest.transports.urls import join_below

log = logging.getLogger(__name__)

TIFF_SLICE_SUFFIXES = (".tif", ".tiff")
SLICE_SUFFIXES = DM_SUFFIXES + TIFF_SLICE_SUFFIXES
SUPPORTED_SUFFIXES = SLICE_SUFFIXES + MRC_SUFFIXES
_ACCESSION = re.compile(r"(?:EMPIAR-)?(\d{1,9})", re.IGNORECASE)
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


class EmpiarSettings(SourceSettings):
    """The ``[sources.empiar]`` section."""

    api_url: str = "https://www.ebi.ac.uk/empiar/api"
    files_url: str = "https://ftp.ebi.ac.uk/empiar/world_availability"
    """Root of ``world_availability``: ``https://`` (autoindex) or ``ftp://`` (FTP listing)."""
    fallback_files_url: str | None = "ftp://ftp.ebi.ac.uk/empiar/world_availability"
    """The same tree over the other protocol, for listings when ``files_url`` fails."""
    cache_dir: Path | None = None
    """Downloads go to ``cache_dir/EMPIAR-n/<path>``; None: ``transport.cache_dir`` if set,
    else ``<data_root>/.cache/empiar``, like every source's cache."""
    z_spacing_nm: float | None = None
    """Slice spacing of 2-D slice stacks whose files carry none (SBF-SEM tags win)."""
    stack_slices: bool = True
    """Stack numbered 2-D slices into one volume; False: one volume per file."""
    listing_depth: int = 4
    """How deep below an imageset's directory listings descend."""
    calibration_tolerance: float = 0.02
    """Relative difference above which file and API pixel sizes are said to disagree."""
    transport: TransportSettings = Field(
        default_factory=lambda: TransportSettings.model_validate({})
    )
    """Timeouts, stall timeout, retries and per-host connections (EBI throttles above 8)."""


@dataclass
class _Imageset:
    index: int
    record: dict[str, Any]
    directory: str
    files: list[RemoteFile]
    listing: dict[str, Any]


@dataclass
class _Plan:
    accession: str  # "11759"
    entry: dict[str, Any]
    imagesets: list[_Imageset] = field(default_factory=list)


def parse_accession(ident: str) -> str:
    """``"11759"``, ``"EMPIAR-11759"`` -> ``"11759"``; anything else is not an EMPIAR id."""
    m = _ACCESSION.fullmatch(str(ident).strip())
    if m is None:
        raise EntryNotFoundError(f"{ident!r} is not an EMPIAR id (expected 11759 or EMPIAR-11759)")
    return str(int(m.group(1)))


def series_key(name: str) -> tuple[str, str, str] | None:
    """(prefix, suffix, number) of a numbered file name: ``slice_0007.dm3`` ->
    ``("slice_", ".dm3", "0007")``; None when the name has no number."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    m = _LAST_NUMBER.search(stem)
    if m is None:
        return None
    return stem[: m.start()], stem[m.end() :] + (f".{ext}" if ext else ""), m.group(1)


class EmpiarOptions(SourceOptions):
    files: list[str] | None = Field(None, description="Glob of files to take (repeatable)")
    max_files: int | None = Field(None, ge=1, description="At most N files per entry (a trial run)")


class EmpiarSource(Source):
    """EMPIAR entries (``11759`` or ``EMPIAR-11759``) as volumes; see the module docstring."""

    name: ClassVar[str] = "empiar"
    description: ClassVar[str] = (
        "Ingest EMPIAR entries: DM3/DM4 slice series become z-stacks, MRC files volumes."
    )
    ids_help: ClassVar[str] = "Entry ids: 11759 or EMPIAR-11759"
    settings_model: ClassVar[type[SourceSettings]] = EmpiarSettings
    replica: ClassVar[str] = "emingest.testing.replicas:EmpiarDemoReplica"
    settings_flags: ClassVar[tuple[str, ...]] = ("api_url", "files_url")
    options_model: ClassVar[type[SourceOptions]] = EmpiarOptions

    @classmethod
    def default_datasets(cls) -> list[DatasetSettings]:
        return [DatasetSettings(name="empiar-11759", source="empiar", ids=["11759"])]

    def check_request(self, spec: Sequence[str], options: Mapping[str, Any]) -> None:
        if not spec:
            raise ConfigError("empiar: give at least one ENTRY id (11759 or EMPIAR-11759)")
        for ident in spec:
            try:
                parse_accession(ident)
            except EntryNotFoundError as err:
                raise ConfigError(str(err)) from None

    def preflight_urls(self) -> list[str]:
        return [f"{self.options.api_url.rstrip('/')}/entry/11759/"]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options: EmpiarSettings = source_settings(settings, self.name, EmpiarSettings)  # type: ignore[assignment]
        self._cache_root = self.options.cache_dir or default_cache_dir(
            settings.storage.local_root, self.name, self.options.transport
        )
        self._layout = "EMPIAR-{}"
        self.net = EmpiarNet(self.options.transport, self._cache_root)
        self._plans: dict[str, _Plan] = {}
        self._infos: dict[VolumeRef, VolumeInfo] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.net.close()

    # -- discover ------------------------------------------------------------------------------

    def discover(
        self,
        spec: Sequence[str],
        *,
        files: str | Sequence[str] | None = None,
        max_files: int | None = None,
        **_: Any,
    ) -> list[VolumeRef]:
        """Volumes of each entry: one per slice series, one per 3-D file.

        ``files``: glob(s) matched against the path in the entry (``data/*_00[0-3].dm3``) or
        the file name; ``max_files``: keep only the first N selected files of each entry, in
        listing order (a trial run stacks the first N slices).
        """
        patterns = [files] if isinstance(files, str) else list(files or [])
        refs: list[VolumeRef] = []
        for ident in spec:
            plan = self._plan(parse_accession(ident))
            taken: set[str] = set()
            count = 0
            for iset in plan.imagesets:
                chosen = []
                for f in iset.files:
                    if f.rel in taken:
                        continue
                    if patterns and not any(
                        fnmatch.fnmatchcase(f.rel, p) or fnmatch.fnmatchcase(f.name, p)
                        for p in patterns
                    ):
                        continue
                    if max_files is not None and count >= max_files:
                        break
                    chosen.append(f)
                    taken.add(f.rel)
                    count += 1
                refs.extend(self._refs_for(plan, iset, chosen))
            if not refs:
                log.warning("EMPIAR-%s: no supported files selected", plan.accession)
        names = Counter((r.source_id, r.name) for r in refs)
        return [
            r
            if names[(r.source_id, r.name)] == 1
            else dataclasses.replace(
                r, name=f"{r.get('members')[0].rsplit('/', 1)[0].replace('/', '_')}_{r.name}"
            )
            for r in refs
        ]

    def _refs_for(self, plan: _Plan, iset: _Imageset, chosen: list[RemoteFile]) -> list[VolumeRef]:
        def ref(name: str, locator: str, kind: str, members: list[RemoteFile]) -> VolumeRef:
            rels = ("members", tuple(m.rel for m in members))
            extra = (("kind", kind), ("imageset", iset.index), rels)
            return VolumeRef(self.name, f"EMPIAR-{plan.accession}", name, locator, extra)

        groups: dict[tuple[str, ...], list[RemoteFile]] = {}
        singles: list[RemoteFile] = []
        for f in chosen:
            key = series_key(f.name)
            if self.options.stack_slices and f.suffix in SLICE_SUFFIXES and key is not None:
                groups.setdefault((f.parent, key[0], key[1]), []).append(f)
            else:
                singles.append(f)
        refs = []
        for (parent, prefix, _suffix), members in groups.items():
            if len(members) < 2:
                singles.extend(members)
                continue
            name = prefix.rstrip("_-. ") or PurePosixPath(parent).name or "stack"
            url = self.net.url(self.options.files_url, plan.accession, parent) + "/"
            refs.append(ref(name, url, "stack", members))
        for f in singles:
            url = self.net.url(self.options.files_url, plan.accession, f.rel)
            refs.append(ref(PurePosixPath(f.name).stem, url, "file", [f]))
        order = {f.rel: i for i, f in enumerate(chosen)}
        return sorted(refs, key=lambda r: order[r.get("members")[0]])

    # -- the entry, its listings and their check against the API's counts ---------------------

    def _plan(self, accession: str) -> _Plan:
        with self._lock:
            if accession in self._plans:
                return self._plans[accession]
        url = f"{self.options.api_url.rstrip('/')}/entry/{accession}/"
        body = self.net.get_json(url, what=f"EMPIAR-{accession}")
        if not isinstance(body, dict) or not body:
            raise RemoteFormatError(f"{url}: expected {{'EMPIAR-{accession}': {{...}}}}")
        entry = body.get(f"EMPIAR-{accession}") or next(iter(body.values()))
        if not isinstance(entry, dict) or not isinstance(entry.get("imagesets", []), list):
            raise RemoteFormatError(f"{url}: the entry is not an object with 'imagesets'")
        plan = _Plan(accession, entry)
        for i, record in enumerate(entry.get("imagesets") or []):
            plan.imagesets.append(self._imageset(accession, i, record))
        with self._lock:
            return self._plans.setdefault(accession, plan)

    def _roots(self) -> list[str]:
        roots = [self.options.files_url]
        if self.options.fallback_files_url and self.options.fallback_files_url != roots[0]:
            roots.append(self.options.fallback_files_url)
        return roots

    def _imageset(self, accession: str, index: int, record: dict[str, Any]) -> _Imageset:
        directory = str(record.get("directory") or "").strip("/")
        for root in self._roots():  # refused here, before any listing request
            self.net.url(root, accession, directory)
        depth = self.options.listing_depth
        listing: dict[str, Any] = {"directory": directory}
        listed: list[RemoteFile] | None = None
        errors: list[str] = []
        roots = self._roots()
        for root in roots:
            try:
                listed = self.net.list_tree(root, accession, directory, depth)
                listing["method"] = self.net.listing_method(root)
                listing["url"] = self.net.url(root, accession, directory) + "/"
                break
            except SourceError as err:
                errors.append(f"{root}: {err}")
                log.warning("EMPIAR-%s: listing %s failed: %s", accession, directory, err)
        if listed is None:
            raise SourceError(
                f"EMPIAR-{accession}: cannot list imageset directory {directory!r}: "
                + "; ".join(errors)
            )
        if errors:
            listing["listing_errors"] = errors
        files = self._select(listed, record)
        expected = _as_int(record.get("num_images_or_tilt_series"))
        listing["listed"] = len(files)
        listing["expected"] = expected
        recovered: list[str] = []
        if expected is not None and len(files) < expected:
            log.warning(
                "EMPIAR-%s: %s lists %d of the %d files the API counts; looking for the rest",
                accession,
                listing["url"],
                len(files),
                expected,
            )
            files, recovered = self._recover(accession, record, files, listed, expected)
        listing["recovered"] = recovered
        if expected is not None:
            listing["missing_count"] = max(0, expected - len(files))
            listing["surplus_count"] = max(0, len(files) - expected)
        listing["gaps"] = _series_gaps(files)
        if listing.get("missing_count") or listing["gaps"]:
            log.warning(
                "EMPIAR-%s: imageset %r still lacks %s file(s); missing numbers %s",
                accession,
                record.get("name"),
                listing.get("missing_count"),
                listing["gaps"],
            )
        listing["ignored"] = sorted(
            f.rel for f in listed if f.suffix not in SUPPORTED_SUFFIXES and not f.refused
        )
        listing["refused"] = sorted(f.rel for f in listed if f.refused)
        return _Imageset(index, record, directory, files, listing)

    def _select(self, listed: list[RemoteFile], record: dict[str, Any]) -> list[RemoteFile]:
        """The imageset's image files, by ``micrographs_file_pattern`` where it matches."""
        files = [f for f in listed if f.suffix in SUPPORTED_SUFFIXES and not f.refused]
        pattern = str(record.get("micrographs_file_pattern") or "").strip().lstrip("/")
        if pattern:
            matched = [
                f
                for f in files
                if fnmatch.fnmatchcase(f.rel, pattern) or fnmatch.fnmatchcase(f.name, pattern)
            ]
            if matched:
                files = matched
        return natsorted(files, key=lambda f: f.rel)

    def _recover(
        self,
        accession: str,
        record: dict[str, Any],
        files: list[RemoteFile],
        listed: list[RemoteFile],
        expected: int,
    ) -> tuple[list[RemoteFile], list[str]]:
        have = {f.rel: f for f in files}
        recovered: list[str] = []
        # 1. the other listing (HTTPS autoindex <-> FTP) may have what this one forgot
        for root in self._roots()[1:]:
            try:
                other = self.net.list_tree(
                    root, accession, str(record.get("directory") or "").strip("/"), 1
                )
            except SourceError:
                continue
            for f in self._select(other, record):
                if f.rel not in have and len(have) < expected:
                    have[f.rel] = f
                    recovered.append(f.rel)
        # 2. the missing numbers of each numbered series, asked for one by one
        for candidate in _candidates(list(have.values()), expected - len(have)):
            if len(have) >= expected:
                break
            size = self.net.exists(self.options.files_url, accession, candidate)
            if size is not None and candidate not in have:
                have[candidate] = RemoteFile(candidate, size)
                recovered.append(candidate)
                log.info("EMPIAR-%s: %s exists though unlisted; fetching it", accession, candidate)
        return natsorted(have.values(), key=lambda f: f.rel), recovered

    # -- describe ------------------------------------------------------------------------------

    def _member(self, accession: str, rel: str, size: int | None = None) -> _Member:
        url = self.net.url(self.options.files_url, accession, rel)
        name = f"{self._layout.format(accession)}/{rel}"
        return _Member(rel, url, name, self.net.local_path(name), size)

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        accession = parse_accession(ref.source_id)
        plan = self._plan(accession)
        iset = plan.imagesets[int(ref.get("imageset"))]
        sizes = {f.rel: f.size for f in iset.files}
        members = [self._member(accession, rel, sizes.get(rel)) for rel in ref.get("members")]
        # From the listing and the entry already fetched: member names and (FTP) sizes.
        fingerprint = {
            "update_date": plan.entry.get("update_date"),
            "files": [{"name": m.rel, "size": m.size} for m in members],
        }
        api_pixel = _api_pixel_nm(iset.record)
        meta: dict[str, Any] = {
            "accession": f"EMPIAR-{accession}",
            "title": plan.entry.get("title"),
            "authors": [
                (a.get("author") or {}).get("name") for a in plan.entry.get("authors") or []
            ],
            "dates": {
                k: plan.entry.get(k)
                for k in ("deposition_date", "release_date", "update_date", "obsolete_date")
            },
            "doi": plan.entry.get("entry_doi"),
            "imageset_index": iset.index,
            "imageset": iset.record,
            "imageset_pixel_size_nm": list(api_pixel) if api_pixel else None,
            "listing": iset.listing,
            "entry": plan.entry,
        }
        first = self.net.fetch(members[0])
        if ref.get("kind") == "stack":
            plane = open_slice(first.path)
            shape = (len(members), *plane.plane_shape)
            dtype = plane.dtype
            z, z_origin = plane.slice_thickness_nm, plane.slice_thickness_origin
            if z is None and self.options.z_spacing_nm:
                z, z_origin = self.options.z_spacing_nm, "setting sources.empiar.z_spacing_nm"
            file_pixel = plane.pixel_size_nm
            meta["format"] = plane.format
            meta["first_slice_header"] = plane.header
            meta["stack"] = {"members": len(members), "z_order": "natural sort of the names"}
        else:
            vol = open_volume_file(first.path, self.options.z_spacing_nm)
            try:
                shape, dtype = vol.shape, vol.dtype
                file_voxel = vol.voxel_size_nm
                file_pixel = (file_voxel[1], file_voxel[2]) if file_voxel else None
                z = file_voxel[0] if file_voxel else None
                z_origin = vol.voxel_size_origin
                meta["format"] = vol.format
                meta["header"] = vol.header
            finally:
                vol.close()
        meta["calibration_check"] = _check_calibration(
            file_pixel, api_pixel, shape, iset.record, self.options.calibration_tolerance
        )
        if meta["calibration_check"]["agrees"] is False:
            log.warning("%s/%s: %s", ref.source_id, ref.name, meta["calibration_check"]["note"])
        pixel = file_pixel or api_pixel
        voxel: tuple[float, float, float] | None = None
        origin = ""
        if pixel is not None:
            if z is None:
                z, z_origin = pixel[1], "assumed equal to x (no slice spacing in files or settings)"
                log.warning("%s/%s: no z spacing; assuming x's", ref.source_id, ref.name)
            voxel = (float(z), float(pixel[0]), float(pixel[1]))
            xy_origin = "file calibration" if file_pixel else "EMPIAR API pixel_width/height (Å)"
            origin = f"y, x: {xy_origin}; z: {z_origin or xy_origin}"
        info = VolumeInfo(
            ref=ref,
            shape=tuple(int(n) for n in shape),  # type: ignore[arg-type]
            dtype=np.dtype(dtype),
            voxel_size_nm=voxel,
            description=str(plan.entry.get("title") or f"EMPIAR-{accession}"),
            download_url=ref.locator,
            voxel_size_origin=origin,
            additional_metadata=meta,
            raw_paths=[m.path for m in members],
            files=[{"name": m.rel, "url": m.url, "size_bytes": 0, "sha256": None} for m in members],
            fingerprint=fingerprint,
        )
        info.files[0].update(_digest(members[0], first))
        with self._lock:
            self._infos[ref] = info
        return info

    # -- open ----------------------------------------------------------------------------------

    def open(self, ref: VolumeRef) -> FileVolume | StackReader:
        with self._lock:
            info = self._infos.get(ref)
        if info is None:
            info = self.describe(ref)
        accession = parse_accession(ref.source_id)
        sizes = {f["name"]: f["size"] for f in info.fingerprint.get("files", [])}
        members = [self._member(accession, rel, sizes.get(rel)) for rel in ref.get("members")]
        cleanup = not self.settings.storage.keep_raw
        if ref.get("kind") == "stack":
            workers = self.options.transport.per_host_connections
            return StackReader(members, info, self.net, workers=workers, cleanup=cleanup)
        got = self.net.fetch(members[0])
        info.files[0].update(_digest(members[0], got))
        return open_volume_file(got.path, self.options.z_spacing_nm)


# -- readers -----------------------------------------------------------------------------------


@dataclass
class _Member:
    rel: str  # in the entry
    url: str
    name: str  # below the cache root
    path: Path
    size: int | None = None  # from the listing, when it gave one (FTP)


def _digest(member: _Member, got: DownloadedFile) -> dict[str, Any]:
    """The record's ``files`` item of a member: its path in the entry, URL, size, sha256."""
    return {**got.as_file_digest(), "name": member.rel}


class StackReader(VolumeReader):
    """A z-stack of 2-D slice files, downloaded in the background in z order and read as
    they arrive. Thread-safe; memory is the region asked for plus one row band per slice."""

    def __init__(
        self,
        members: list[_Member],
        info: VolumeInfo,
        net: EmpiarNet,
        *,
        workers: int,
        cleanup: bool = False,
    ) -> None:
        self.shape = info.shape
        self.dtype = np.dtype(info.dtype)
        self._members = members
        self._info = info
        self._net = net
        self._cleanup = cleanup
        self._cancel = threading.Event()
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="emingest-empiar")
        self._futures: list[Future[SliceFile]] = [
            self._pool.submit(self._load, z) for z in range(len(members))
        ]

    def _load(self, z: int) -> SliceFile:
        member = self._members[z]
        got = self._net.fetch(member, cancel=self._cancel)
        self._info.files[z].update(_digest(member, got))
        plane = open_slice(got.path)
        if plane.plane_shape != tuple(self.shape[1:]) or plane.dtype != self.dtype:
            raise ConversionError(
                f"{member.rel}: slice {z} is {plane.plane_shape} {plane.dtype}, the series is "
                f"{tuple(self.shape[1:])} {self.dtype}; it is not a slice of the same acquisition"
            )
        expected = self._info.voxel_size_nm
        pixel = plane.pixel_size_nm
        if expected and pixel and not np.allclose(pixel, expected[1:], rtol=1e-4):
            log.warning(
                "%s: pixel size %s nm differs from the first slice's %s nm",
                member.rel,
                pixel,
                expected[1:],
            )
        return plane

    def read(self, region: Region) -> np.ndarray:
        check_region(region, self.shape)
        zs, ys, xs = region
        out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), self.dtype)
        for i, z in enumerate(range(zs.start, zs.stop)):
            try:
                plane = self._futures[z].result()
            except (ConversionError, LocalStorageError):  # these name their file already
                raise
            except Exception as err:
                raise type(err)(f"slice {z} ({self._members[z].rel}): {err}") from err
            out[i] = plane.read(ys, xs)
        return out

    def close(self) -> None:
        self._cancel.set()
        for f in self._futures:
            f.cancel()
        self._pool.shutdown(wait=True)
        if self._cleanup:
            for m in self._members:
                m.path.unlink(missing_ok=True)
                done_marker(m.path).unlink(missing_ok=True)


# -- small helpers ------------------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _api_pixel_nm(record: dict[str, Any]) -> tuple[float, float] | None:
    """(y, x) nm from the imageset's ``pixel_height``/``pixel_width``, which are Å."""
    try:
        w = float(record.get("pixel_width"))  # type: ignore[arg-type]
        h = float(record.get("pixel_height") or w)
    except (TypeError, ValueError):
        return None
    return (h / 10.0, w / 10.0) if w > 0 and h > 0 else None


def _check_calibration(
    file_pixel: tuple[float, float] | None,
    api_pixel: tuple[float, float] | None,
    shape: tuple[int, ...],
    record: dict[str, Any],
    tolerance: float,
) -> dict[str, Any]:
    """File vs API: pixel size (nm, y x) and image size; ``agrees`` None when either lacks."""
    out: dict[str, Any] = {
        "file_pixel_size_nm": list(file_pixel) if file_pixel else None,
        "api_pixel_size_nm": list(api_pixel) if api_pixel else None,
        "file_image_size": [int(shape[-1]), int(shape[-2])],
        "api_image_size": [_as_int(record.get("image_width")), _as_int(record.get("image_height"))],
    }
    notes = []
    agrees: bool | None = None
    if file_pixel and api_pixel:
        ok = all(
            abs(f - a) <= tolerance * max(a, 1e-12)
            for f, a in zip(file_pixel, api_pixel, strict=True)
        )
        agrees = ok
        if not ok:
            notes.append(f"file pixel size {file_pixel} nm != API {api_pixel} nm (pixel_width Å)")
    if None not in out["api_image_size"]:
        size_ok = out["api_image_size"] == out["file_image_size"]
        out["image_size_agrees"] = size_ok
        if not size_ok:
            notes.append(
                f"file image {out['file_image_size']} (w, h) != API {out['api_image_size']}"
            )
            agrees = False
    out["agrees"] = agrees
    out["note"] = "; ".join(notes) or ("agree" if agrees else "nothing to compare")
    return out


def _series_gaps(files: list[RemoteFile]) -> list[str]:
    """Names a numbered series lacks between its first and last number."""
    out = []
    for family in _families(files).values():
        nums = sorted(family["numbers"])
        width = family["width"]
        for n in range(nums[0], nums[-1] + 1):
            if n not in family["numbers"]:
                out.append(family["template"].format(str(n).zfill(width)))
    return out


def _families(files: list[RemoteFile]) -> dict[tuple[str, str, str], dict[str, Any]]:
    fams: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in files:
        key = series_key(f.name)
        if key is None:
            continue
        prefix, suffix, number = key
        fam = fams.setdefault(
            (f.parent, prefix, suffix),
            {
                "numbers": set(),
                "width": len(number),
                "template": (f"{f.parent}/" if f.parent else "")
                + prefix.replace("{", "{{").replace("}", "}}")
                + "{}"
                + suffix.replace("{", "{{").replace("}", "}}"),
            },
        )
        fam["numbers"].add(int(number))
        fam["width"] = min(fam["width"], len(number))
    return fams


def _candidates(files: list[RemoteFile], shortfall: int) -> list[str]:
    """Names worth asking for: gaps inside each numbered series, then the numbers after it."""
    out: list[str] = []
    for family in _families(files).values():
        nums = family["numbers"]
        width = family["width"]
        name = family["template"].format
        out.extend(name(str(n).zfill(width)) for n in range(min(nums), max(nums)) if n not in nums)
        out.extend(name(str(max(nums) + k).zfill(width)) for k in range(1, shortfall + 1))
        out.extend(name(str(n).zfill(width)) for n in range(min(nums) - 1, -1, -1)[:shortfall])
    return out[: max(64, 4 * shortfall)]


__all__ = ["EmpiarSettings", "EmpiarSource", "StackReader", "parse_accession", "series_key"]


# -- bytes: EMPIAR's addresses and listings over emingest.transports -------------------------


@dataclass(frozen=True)
class RemoteFile:
    """A file of an entry's tree, ``rel`` relative to the entry's folder."""

    rel: str
    size: int | None = None
    refused: bool = False
    """The listing named it, but not safely (``..``, separators, control characters)."""

    @property
    def name(self) -> str:
        return PurePosixPath(self.rel).name

    @property
    def parent(self) -> str:
        parent = str(PurePosixPath(self.rel).parent)
        return "" if parent == "." else parent

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.rel).suffix.lower()


class EmpiarNet:
    """EMPIAR's tree over :mod:`emingest.transports`: API calls and autoindex pages by
    :class:`HttpTransport`, FTP listings by :class:`FtpTransport`, files by
    :class:`Downloader` (resume, stalls, retries with ``Retry-After``, safe names, sha256), all
    under one per-host connection limit shared by HTTP and FTP."""

    def __init__(self, transport: TransportSettings, cache_dir: Path) -> None:
        self.downloader = Downloader(transport, cache_dir)
        self.http = self.downloader.http
        self.ftp = self.downloader.ftp

    def close(self) -> None:
        self.downloader.close()

    # -- addresses -------------------------------------------------------------------------

    @staticmethod
    def url(root: str, accession: str, rel: str = "") -> str:
        """``root/accession/rel``; a ``rel`` from the API or a listing that would leave the
        entry's folder (``..``, encoded dots or slashes, another host) is refused before any
        request (:func:`emingest.transports.urls.join_below`)."""
        return join_below(f"{root.rstrip('/')}/{accession}", rel.lstrip("/")).rstrip("/")

    @staticmethod
    def listing_method(root: str) -> str:
        return "ftp listing" if is_ftp(root) else "http autoindex"

    def local_path(self, name: str) -> Path:
        """Where the cache keeps ``name`` (a path below the cache root); an unsafe name
        raises :class:`RemoteFormatError` (:func:`emingest.transports.local_path`)."""
        return local_path(self.downloader.cache_dir, name)

    # -- API and listings ------------------------------------------------------------------

    def get_json(self, url: str, what: str) -> Any:
        try:
            return self.http.get_json(url)
        except EntryNotFoundError as err:
            raise EntryNotFoundError(f"{what}: no such EMPIAR entry ({url}: {err})") from err

    def list_tree(self, root: str, accession: str, directory: str, depth: int) -> list[RemoteFile]:
        """Files below ``directory`` of the entry, ``depth`` folder levels deep. A name that
        is not a safe path component is returned ``refused`` (and never descended into)."""
        out: list[RemoteFile] = []
        pending = [(directory.strip("/"), 0)]
        while pending:
            folder, level = pending.pop(0)
            url = self.url(root, accession, folder) + "/"
            for name, size, is_dir in self._list_dir(url):
                rel = f"{folder}/{name}" if folder else name
                try:
                    safe_name(name, where=url)
                except RemoteFormatError as err:
                    log.warning("EMPIAR-%s: %s", accession, err)
                    out.append(RemoteFile(rel, size, refused=True))
                    continue
                if is_dir:
                    if level + 1 < depth:
                        pending.append((rel, level + 1))
                else:
                    out.append(RemoteFile(rel, size))
        return out

    def _list_dir(self, url: str) -> list[tuple[str, int | None, bool]]:
        return [(e.name, e.size, bool(e.is_dir)) for e in list_dir(self.http, self.ftp, url)]

    def exists(self, root: str, accession: str, rel: str) -> int | None:
        """The size of a file the listing did not show (HEAD / FTP ``SIZE``), or None when it
        does not exist or its size is unknown."""
        return remote_size(self.http, self.ftp, self.url(root, accession, rel))

    # -- downloads -------------------------------------------------------------------------

    def fetch(self, member: _Member, cancel: threading.Event | None = None) -> DownloadedFile:
        """``member.url`` into the cache as ``member.name`` (resumed, verified, sha256); a
        finished download is served from the cache. ``cancel`` stops files not yet started."""
        if cancel is not None and cancel.is_set():
            raise SourceError(f"{member.url}: download cancelled")
        # A cached copy of another size than the listing's is a stale one: downloaded again.
        known = {"name": member.rel, "size": member.size} if member.size is not None else {}
        return fetch_current(self.downloader, member.url, member.name, known)
