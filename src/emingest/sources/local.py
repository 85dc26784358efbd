"""Local volumes: TIFF / OME-TIFF / ImageJ TIFF, MRC, a folder or glob of 2-D images, Zarr."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from emingest.config import Settings
from emingest.errors import ConfigError, UnsupportedFormatError
from emingest.fingerprints import local_files_fingerprint, zarr_fingerprint
from emingest.formats import open_volume
from emingest.formats.base import FileVolume
from emingest.formats.limits import DecodeLimits
from emingest.formats.stack import ImageStackVolume
from emingest.formats.tiff import is_tiff, tiff_series
from emingest.formats.zarr_array import ZarrVolume
from emingest.sources.base import Source, SourceSettings, VolumeInfo, VolumeRef, source_settings


def _tiff_series(path: Path) -> list[int]:
    """The data series of a TIFF file (one for most), or [] for anything else."""
    if not path.is_file() or not is_tiff(path):
        return []
    try:
        return tiff_series(path)
    except UnsupportedFormatError:
        return []  # describe reports it, with the volume's own record


def _fingerprint(vol: FileVolume) -> dict[str, Any]:
    """Sizes and modification times of what the volume is read from."""
    if isinstance(vol, ImageStackVolume):
        return local_files_fingerprint(vol.members)
    if isinstance(vol, ZarrVolume):
        return zarr_fingerprint(vol.path)
    return local_files_fingerprint([vol.path])


class LocalSettings(SourceSettings):
    pass


class LocalSource(Source):
    """``emingest ingest local PATH...``: each path (file, folder of slices, glob, Zarr) is one
    volume. Its id is the file's stem plus a short hash of its absolute path, so two files
    called ``volume.tif`` in different folders never share an output folder."""

    name: ClassVar[str] = "local"
    description: ClassVar[str] = (
        "Ingest local volumes (multi-page/ImageJ/OME TIFF, MRC, 2-D slice folders, Zarr)."
    )
    ids_help: ClassVar[str] = "TIFF, MRC, Zarr, folder or glob of slices"
    settings_model: ClassVar[type[SourceSettings]] = LocalSettings

    def check_request(self, spec: Sequence[str], options: Mapping[str, Any]) -> None:
        if not spec:
            raise ConfigError("local: give at least one PATH (file, folder, glob or Zarr)")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options = source_settings(settings, self.name, LocalSettings)

    def discover(self, spec: Sequence[str], **options: Any) -> list[VolumeRef]:
        refs = []
        for item in spec:
            p = Path(item).expanduser()
            absolute = str(p.resolve()) if p.exists() else str(p.absolute())
            stem = p.name
            for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".zarr"):
                if stem.lower().endswith(suffix):
                    stem = stem[: -len(suffix)]
                    break
            else:
                stem = p.stem if p.suffix and not any(c in stem for c in "*?[") else stem
            stem = stem.replace("*", "").replace("?", "") or "stack"
            digest = hashlib.sha1(absolute.encode()).hexdigest()[:8]
            source_id = f"{stem}-{digest}"
            series = _tiff_series(Path(absolute))
            if len(series) <= 1:
                refs.append(VolumeRef(self.name, source_id, stem, absolute))
                continue
            # Several series (pages of different shapes, or series written one after another):
            # each becomes its own volume, so no pixel is left behind.
            for n, index in enumerate(series):
                name = stem if n == 0 else f"{stem}_series{index}"
                refs.append(VolumeRef(self.name, source_id, name, absolute, (("series", index),)))
        return refs

    def _open(self, ref: VolumeRef) -> FileVolume:
        return open_volume(
            ref.locator,
            series=ref.get("series"),
            limits=DecodeLimits.from_settings(self.settings.limits),
        )

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        vol = self._open(ref)
        try:
            return VolumeInfo(
                ref=ref,
                shape=vol.shape,
                dtype=vol.dtype,
                voxel_size_nm=vol.voxel_size_nm,
                description=f"local {vol.format} {Path(ref.locator).name}",
                download_url=Path(ref.locator).as_uri()
                if Path(ref.locator).is_absolute()
                else ref.locator,
                voxel_size_origin=vol.voxel_size_origin,
                fingerprint=_fingerprint(vol),
                additional_metadata={
                    "format": vol.format,
                    "path": ref.locator,
                    "header": vol.header,
                },
            )
        finally:
            vol.close()

    def open(self, ref: VolumeRef) -> FileVolume:
        return self._open(ref)
